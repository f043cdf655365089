"""Policy defaults, with the original Karbor's rule names so existing policy files apply."""

from __future__ import annotations

from oslo_policy import policy

ADMIN_OR_OWNER = "rule:admin_or_owner"
ADMIN_API = "rule:admin_api"

base_rules = [
    policy.RuleDefault("context_is_admin", "role:admin", description="Admin role."),
    policy.RuleDefault(
        "admin_or_owner",
        "is_admin:True or (role:admin and is_admin_project:True) or project_id:%(project_id)s",
        description="Admin, or a member of the object's project."),
    policy.RuleDefault("default", ADMIN_OR_OWNER, description="Fallback rule."),
    policy.RuleDefault("admin_api", "is_admin:True or (role:admin and is_admin_project:True)",
                       description="Admin only."),
]


def _rules(prefix: str, names_and_defaults: dict[str, str]):
    return [
        policy.RuleDefault(f"{prefix}:{name}", check, description=f"{prefix} {name}.")
        for name, check in names_and_defaults.items()
    ]


def list_rules():
    rules = list(base_rules)
    rules += _rules("plan", dict.fromkeys(["create", "update", "delete", "get", "get_all"],
                                          ADMIN_OR_OWNER))
    rules += _rules("restore", dict.fromkeys(["create", "update", "get", "get_all"],
                                             ADMIN_OR_OWNER))
    rules += _rules("verification", dict.fromkeys(["create", "get", "get_all"], ADMIN_OR_OWNER))
    rules += _rules("protectable", dict.fromkeys(
        ["get", "get_all", "instance_get", "instance_get_all"], ADMIN_OR_OWNER))
    rules += _rules("provider", dict.fromkeys(
        ["get", "get_all", "checkpoint_get", "checkpoint_get_all", "checkpoint_create",
         "checkpoint_delete", "checkpoint_update"], ADMIN_OR_OWNER))
    rules += _rules("copy", {"create": ADMIN_OR_OWNER})
    rules += _rules("operation_log", dict.fromkeys(["get", "list"], ADMIN_OR_OWNER))
    rules += _rules("trigger", dict.fromkeys(["create", "update", "delete", "get", "list"],
                                             ADMIN_OR_OWNER))
    rules += _rules("scheduled_operation", dict.fromkeys(["create", "update", "delete", "get",
                                                         "list"],
                                                         ADMIN_OR_OWNER))
    rules += _rules("service", {"get_all": ADMIN_API, "update": ADMIN_API})
    rules += _rules("quota", {"get": ADMIN_OR_OWNER, "get_default": ADMIN_OR_OWNER,
                              "update": ADMIN_API, "delete": ADMIN_API})
    rules += _rules("quota_class", {"get": ADMIN_OR_OWNER, "update": ADMIN_API})
    return rules
