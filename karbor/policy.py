"""The policy enforcer: defaults from ``karbor.policies``, overridable by a policy file."""

from __future__ import annotations

import threading
from typing import Any

from oslo_policy import policy as oslo_policy

from karbor.common import exception
from karbor.common.config import CONF
from karbor.policies import list_rules

_ENFORCER: oslo_policy.Enforcer | None = None
_LOCK = threading.Lock()


def get_enforcer() -> oslo_policy.Enforcer:
    global _ENFORCER
    with _LOCK:
        if _ENFORCER is None:
            enforcer = oslo_policy.Enforcer(CONF)
            enforcer.register_defaults(list_rules())
            enforcer.load_rules()
            _ENFORCER = enforcer
    return _ENFORCER


def reset() -> None:
    global _ENFORCER
    with _LOCK:
        _ENFORCER = None


def authorize(context, action: str, target: dict[str, Any] | None = None, *,
              fatal: bool = True) -> bool:
    full_target = {"project_id": context.project_id, "user_id": context.user_id}
    if target:
        full_target.update({k: v for k, v in target.items() if v is not None})
    try:
        return get_enforcer().authorize(
            action, full_target, context.to_policy_values(), do_raise=fatal,
            exc=exception.PolicyNotAuthorized, action=action)
    except oslo_policy.PolicyNotRegistered:
        raise exception.PolicyNotAuthorized(action=action) from None


def list_rules_for_generator():
    return list_rules()
