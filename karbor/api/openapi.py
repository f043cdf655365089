"""The OpenAPI 3.0 document of the v1 API, generated from the routes and request schemas.

* Paths, methods and path parameters come from the Flask url_map the v1 router
  builds (``karbor.api.v1.router.register``), so a route that exists is documented
  and a route that does not is not.
* Request bodies are the Draft-4 JSON schemas the controllers validate with
  (``karbor.api.schemas.*``), converted to the OpenAPI 3.0 dialect (no ``type``
  lists: ``nullable``/``anyOf``; no ``patternProperties``: ``additionalProperties``
  plus an ``x-patternProperties`` note).
* Response bodies describe the controllers' views; errors share the fault body
  ``{"<faultName>": {"code": int, "message": str}}``.

Schemas of resources whose controller is not present (or not importable) are
left out; their routes, if any, still get a generic description.
"""

from __future__ import annotations

import copy
import functools
import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from karbor.common import constants

OPENAPI_VERSION = "3.0.3"
JSON = "application/json"
REQUEST_ID_HEADER = "x-openstack-request-id"

# --------------------------------------------------------------------------------------
# Draft-4 -> OpenAPI 3.0 schema conversion

_TYPE_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "format"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
                "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
               "format"},
    "object": {"properties", "additionalProperties", "required", "minProperties",
               "maxProperties", "x-patternProperties"},
    "array": {"items", "minItems", "maxItems", "uniqueItems"},
    "boolean": set(),
}
_ALL_TYPED = set().union(*_TYPE_KEYWORDS.values())
_DROP = {"$schema", "id", "definitions", "dependencies", "patternProperties"}


def convert(schema: Any) -> Any:
    """A Draft-4 JSON schema as an OpenAPI 3.0 Schema Object (new object, input untouched)."""
    if isinstance(schema, bool):
        return {} if schema else {"not": {}}
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or key == "type":
            continue
        if key == "properties":
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in ("items", "not"):
            out[key] = ([convert(s) for s in value] if isinstance(value, list)
                        else convert(value))
        elif key == "additionalProperties":
            out[key] = value if isinstance(value, bool) else convert(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(s) for s in value]
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(out.get("items"), list):  # tuple validation: not in OpenAPI 3.0
        items = out.pop("items")
        out["items"] = {"anyOf": items} if items else {}
    patterns = schema.get("patternProperties")
    if patterns:
        converted = {pattern: convert(sub) for pattern, sub in patterns.items()}
        out["x-patternProperties"] = converted
        if schema.get("additionalProperties", True) is False:
            values = list(converted.values())
            if len(values) == 1:
                out["additionalProperties"] = values[0] if values[0] else True
            else:
                out["additionalProperties"] = {"anyOf": values}
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        nullable = "null" in kind
        if len(types) == 1:
            out["type"] = types[0]
            if nullable:
                out["nullable"] = True
            _strip_foreign(out, types[0])
        elif not types:
            out = {"nullable": True, "enum": [None]}
        else:
            shared = {k: v for k, v in out.items() if k not in _ALL_TYPED}
            branches = []
            for t in types:
                branch = {"type": t, **{k: v for k, v in out.items()
                                        if k in _TYPE_KEYWORDS.get(t, set())}}
                if nullable:
                    branch["nullable"] = True
                branches.append(branch)
            out = {**shared, "anyOf": branches}
    elif kind == "null":
        out = {"nullable": True, "enum": [None]}
    elif kind is not None:
        out["type"] = kind
    if "type" in out:  # readability: the type first
        out = {"type": out.pop("type"), **out}
    return out


def _strip_foreign(out: dict[str, Any], kind: str) -> None:
    """Keywords of another type than ``kind`` mean nothing there; drop them."""
    foreign = _ALL_TYPED - _TYPE_KEYWORDS.get(kind, set())
    for key in list(out):
        if key in foreign:
            del out[key]


# --------------------------------------------------------------------------------------
# Building blocks of the response schemas (they mirror the controllers' views)


def _obj(properties: dict[str, Any], required: list[str] | None = None,
         **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if not schema["required"]:
        del schema["required"]
    schema.update(extra)
    return schema


def _str(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


def _nstr(**extra: Any) -> dict[str, Any]:
    return {"type": "string", "nullable": True, **extra}


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


ANY: dict[str, Any] = {"description": "Any JSON value (including null)."}
INT = {"type": "integer"}
UUID = _str(format="uuid")
DATETIME = _nstr(description="UTC, YYYY-MM-DDTHH:MM:SS.ffffff")
FREE_OBJECT = {"type": "object", "additionalProperties": True}
EMPTY_OBJECT = {"type": "object", "properties": {}, "additionalProperties": False}
LINKS = _arr(_obj({"rel": _str(), "href": _str()}))

RESOURCE = _obj({"id": _str(), "type": _str(), "name": _str(), "extra_info": ANY},
                required=["id", "type", "name"])
PARAMETERS = {"type": "object",
              "additionalProperties": {"type": "object", "nullable": True,
                                       "additionalProperties": True},
              "description": "Keys are <resource type> or <resource type>#<resource id>."}

PLAN = _obj({
    "id": UUID, "name": _str(), "description": _nstr(), "resources": _arr(RESOURCE),
    "provider_id": _str(), "status": _str(description="suspended | started"),
    "parameters": PARAMETERS,
})

CHECKPOINT_STATUSES = [
    constants.CHECKPOINT_STATUS_PROTECTING, constants.CHECKPOINT_STATUS_AVAILABLE,
    constants.CHECKPOINT_STATUS_ERROR, constants.CHECKPOINT_STATUS_DELETING,
    constants.CHECKPOINT_STATUS_DELETED, constants.CHECKPOINT_STATUS_ERROR_DELETING,
    constants.CHECKPOINT_STATUS_WAIT_COPYING, constants.CHECKPOINT_STATUS_COPYING,
    constants.CHECKPOINT_STATUS_COPY_FINISHED,
]
CHECKPOINT = _obj({
    "id": UUID, "project_id": _str(), "status": _str(enum=CHECKPOINT_STATUSES),
    "protection_plan": _obj({"id": _str(), "name": _nstr(), "provider_id": _str(),
                             "resources": _arr(RESOURCE)}, required=["id", "resources"]),
    "resource_graph": _nstr(description="The resource graph serialized as a JSON string; "
                                        "null until the protection has built it."),
    "created_at": _nstr(description="Date only, YYYY-MM-DD (UTC)."),
    "extra_info": _nstr(description="A JSON object serialized as a string."),
})

RESULT_MAP = {"type": "object", "additionalProperties": True,
              "description": "Keyed <resource type>#<resource id>."}
_NINT = {"type": "integer", "nullable": True}
_NNUM = {"type": "number", "nullable": True}
PROGRESS = _obj({
    "resources": _obj({"total": INT, "done": INT, "failed": INT}),
    "bytes": _obj({"total": _NINT, "done": INT}),
    "files": _obj({"total": _NINT, "done": INT}),
    "percent": _NNUM, "rate_bytes_per_second": _NNUM, "eta_seconds": _NNUM,
    "updated_at": _str(),
}, required=["resources", "bytes", "percent", "updated_at"],
    description="Live progress of the running operation (an addition to the original API; "
                "bytes.total is an estimate).")
SUMMARY = _obj({
    "duration_seconds": {"type": "number"}, "logical_bytes": INT, "new_bytes": _NINT,
    "bytes_added": _NINT, "dedup_ratio": _NNUM, "compression_ratio": _NNUM,
    "resources": RESULT_MAP,
}, required=["duration_seconds", "resources"],
    description="How the operation ended: sizes, ratios and each resource's status and "
                "reason (an addition to the original API).")
OUTCOME = {"progress": PROGRESS, "summary": SUMMARY,
           "reason": _str(description="Why the checkpoint is in error (with "
                                      "resources_reason).")}
CHECKPOINT["properties"].update({**OUTCOME, "resources_status": RESULT_MAP,
                                 "resources_reason": RESULT_MAP})
RESTORE = _obj({
    "id": UUID, "project_id": _str(), "provider_id": _str(), "checkpoint_id": _str(),
    "restore_target": _nstr(), "parameters": PARAMETERS,
    "status": _str(description="in_progress | success | fail"),
    "resources_status": RESULT_MAP, "resources_reason": RESULT_MAP,
}, required=["id", "project_id", "provider_id", "checkpoint_id", "restore_target",
             "parameters", "status", "resources_status", "resources_reason"])
RESTORE["properties"].update(OUTCOME)
VERIFICATION = _obj({
    "id": UUID, "project_id": _str(), "provider_id": _str(), "checkpoint_id": _str(),
    "parameters": PARAMETERS, "status": _str(description="in_progress | success | fail"),
    "resources_status": RESULT_MAP, "resources_reason": RESULT_MAP,
}, required=["id", "project_id", "provider_id", "checkpoint_id", "parameters", "status",
             "resources_status", "resources_reason"])
VERIFICATION["properties"].update(OUTCOME)
OPERATION_LOG = _obj({
    "id": UUID, "project_id": _str(), "operation_type": _str(),
    "checkpoint_id": _nstr(), "plan_id": _nstr(), "provider_id": _nstr(),
    "restore_id": _nstr(), "verification_id": _nstr(), "scheduled_operation_id": _nstr(),
    "status": _nstr(), "started_at": DATETIME, "ended_at": DATETIME,
    "error_info": _nstr(), "extra_info": ANY,
})
PROVIDER = _obj({"id": _str(), "name": _str(), "description": _nstr(),
                 "extended_info_schema": _obj({
                     "options_schema": FREE_OBJECT, "restore_schema": FREE_OBJECT,
                     "saved_info_schema": FREE_OBJECT}, required=[])})
DEPENDENT = _obj({"type": _str(), "id": _str(), "name": _nstr(), "extra_info": ANY},
                 required=["type", "id"])
INSTANCE = _obj({"id": _str(), "type": _str(), "name": _nstr(), "extra_info": ANY,
                 "dependent_resources": _arr(DEPENDENT)}, required=["id", "type"])
SERVICE = _obj({
    "id": INT, "binary": _str(), "host": _str(),
    "status": _str(enum=["enabled", "disabled"]), "state": _str(enum=["up", "down"]),
    "updated_at": DATETIME, "disabled_reason": _nstr(),
})
LIMITS = {"plans": INT, "checkpoints": INT}
USAGE = _obj({"limit": INT, "in_use": INT, "reserved": INT})
COPY = _obj({
    "project_id": _str(), "provider_id": _str(), "plan_id": _str(),
    "checkpoint_id": _arr(_obj({"checkpoint_protect_id": _str(),
                                "checkpoint_copy_id": _str()})),
    "parameters": PARAMETERS,
})
TRIGGER = _obj({"id": UUID, "name": _str(), "type": _str(),
                "properties": {"type": "object", "additionalProperties": True}})
SCHEDULED_OPERATION = _obj({
    "id": UUID, "name": _nstr(), "description": _nstr(), "operation_type": _str(),
    "trigger_id": _str(), "operation_definition": FREE_OBJECT, "enabled": {"type": "boolean"},
}, required=["id", "operation_type", "trigger_id", "operation_definition"])
VERSIONS = _obj({"versions": _arr(_obj({"id": _str(), "status": _str(), "links": LINKS}))})


def _single(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return _obj({key: item})


def _collection(key: str, item: dict[str, Any], links: str | None = None) -> dict[str, Any]:
    props = {key: _arr(item)}
    if links:
        props[links] = LINKS
    return _obj(props, required=[key])


# --------------------------------------------------------------------------------------
# Error responses

FAULTS = {
    400: ("badRequest", "BadRequest",
          "Malformed or invalid request (body, parameters, or URL project differs from the "
          "token's project)."),
    401: ("unauthorized", "Unauthorized", "Authentication required."),
    403: ("forbidden", "Forbidden", "Not allowed by policy or not the owner."),
    404: ("itemNotFound", "NotFound", "The object or route does not exist."),
    409: ("conflictingRequest", "Conflict",
          "The object is in a state that does not allow this request."),
    413: ("overLimit", "OverLimit", "Quota exceeded."),
    424: ("failedDependency", "FailedDependency", "The object is still in use."),
}
BASE_ERRORS = (400, 401, 403, 404)


def _fault_schema(name: str) -> dict[str, Any]:
    inner = _obj({"code": INT, "message": _str()})
    return {"type": "object", "properties": {name: inner}, "required": [name],
            "additionalProperties": False}


def _request_id_header() -> dict[str, Any]:
    return {REQUEST_ID_HEADER: {"description": "The request id (req-<uuid>).", "required": True,
                                "schema": _str(pattern="^req-")}}


def _components() -> dict[str, Any]:
    responses = {}
    for code, (name, component, text) in FAULTS.items():
        headers = _request_id_header()
        if code == 413:
            headers["Retry-After"] = {"description": "Seconds to wait before retrying.",
                                      "schema": _str()}
        responses[component] = {"description": text, "headers": headers,
                                "content": {JSON: {"schema": _fault_schema(name)}}}
    return {
        "securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                      "description": "A Keystone token; with auth_strategy=noauth "
                                     "'<user>:<project>'."},
        },
        "responses": responses,
    }


# --------------------------------------------------------------------------------------
# What each route means


@dataclass
class Op:
    summary: str
    response: dict[str, Any] | None = None  # None: empty body
    body: str | None = None                 # "module:attribute" of the request schema
    errors: tuple[int, ...] = ()
    query: list[dict[str, Any]] = field(default_factory=list)
    example: Any = None                     # an example request body


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


PAGING = [
    _q("limit", {"type": "integer", "minimum": 1}, "Page size (capped by osapi_max_limit)."),
    _q("marker", _str(), "Id of the last item of the previous page."),
    _q("offset", {"type": "integer", "minimum": 0}),
    _q("sort", _str(), "key1[:asc|desc][,key2[:asc|desc]...]"),
    _q("sort_key", _str(), "Deprecated; do not combine with 'sort'."),
    _q("sort_dir", _str(enum=["asc", "desc"]), "Deprecated; do not combine with 'sort'."),
    _q("all_tenants", {"type": "boolean"}, "Admin only: list every project's objects."),
]


def _filters(*names: str) -> list[dict[str, Any]]:
    return [_q(n, _str(), "Filter.") for n in names]


P = "/v1/{}"
NOOP = constants.NOOP_PROVIDER_ID
EXAMPLE_ID = "9f5d9b1e-0c0e-4b8e-a3c1-2a3b4c5d6e7f"
EXAMPLE_PROJECT = "c0ffee00c0ffee00c0ffee00c0ffee00"
EXAMPLE_RESOURCES = [{"id": EXAMPLE_PROJECT, "type": constants.PROJECT_RESOURCE_TYPE,
                      "name": "my project"}]
CALENDAR = "BEGIN:VEVENT\nRRULE:FREQ=WEEKLY;INTERVAL=1;\nEND:VEVENT"

OPS: dict[tuple[str, str], Op] = {
    ("GET", P + "/plans"): Op("List plans", _collection("plans", PLAN, "plans_links"),
                              query=PAGING + _filters("name", "description", "status")),
    ("POST", P + "/plans"): Op(
        "Create a plan", _single("plan", PLAN), "karbor.api.schemas.plans:create", (413,),
        example={"plan": {"name": "My plan", "description": "nightly", "provider_id": NOOP,
                          "resources": EXAMPLE_RESOURCES, "parameters": {}}}),
    ("GET", P + "/plans/{}"): Op("Show a plan", _single("plan", PLAN)),
    ("PUT", P + "/plans/{}"): Op("Update a plan", _single("plan", PLAN),
                                 "karbor.api.schemas.plans:update", (409,),
                                 example={"plan": {"name": "Renamed plan"}}),
    ("DELETE", P + "/plans/{}"): Op("Delete a plan", None, errors=(409,)),
    ("GET", P + "/protectables"): Op(
        "List protectable types", _obj({"protectable_type": _arr(_str())})),
    ("GET", P + "/protectables/{}"): Op(
        "Show a protectable type",
        _single("protectable_type", _obj({"name": _str(), "dependent_types": _arr(_str())}))),
    ("GET", P + "/protectables/{}/instances"): Op(
        "List the instances of a protectable type",
        _collection("instances", INSTANCE, "instances_links"),
        query=PAGING + [_q("parameters", _str(), "A dict literal, e.g. {'name': 'ns:pod'}.")]
        + _filters("status")),
    ("GET", P + "/protectables/{}/instances/{}"): Op(
        "Show a protectable instance", _single("instance", INSTANCE),
        query=[_q("parameters", _str(), "A dict literal, e.g. {'name': 'ns:pod'}.")]),
    ("GET", P + "/providers"): Op("List providers",
                                  _collection("providers", PROVIDER, "providers_links"),
                                  query=PAGING + _filters("name", "description")),
    ("GET", P + "/providers/{}"): Op("Show a provider", _single("provider", PROVIDER)),
    ("GET", P + "/providers/{}/checkpoints"): Op(
        "List checkpoints", _collection("checkpoints", CHECKPOINT, "checkpoints_links"),
        query=PAGING + _filters("plan_id", "status")
        + [_q("start_date", _str(format="date")), _q("end_date", _str(format="date"))]),
    ("POST", P + "/providers/{}/checkpoints"): Op(
        "Protect a plan (create a checkpoint)", _single("checkpoint", CHECKPOINT),
        "karbor.api.schemas.checkpoints:create", (409, 413),
        example={"checkpoint": {"plan_id": EXAMPLE_ID, "extra_info": {"reason": "manual"}}}),
    ("POST", P + "/providers/{}/checkpoints/action"): Op(
        "Copy the checkpoints of a plan",
        _obj({"copy": {"oneOf": [COPY, _arr(COPY)]}}),
        "karbor.api.schemas.checkpoints:copy", (409,),
        example={"copy": {"plan_id": EXAMPLE_ID, "parameters": {}}}),
    ("GET", P + "/providers/{}/checkpoints/{}"): Op(
        "Show a checkpoint", _single("checkpoint", CHECKPOINT)),
    ("DELETE", P + "/providers/{}/checkpoints/{}"): Op(
        "Delete a checkpoint", EMPTY_OBJECT, errors=(409,)),
    ("PUT", P + "/providers/{}/checkpoints/{}"): Op(
        "Reset the state of a checkpoint", EMPTY_OBJECT,
        "karbor.api.schemas.checkpoints:update", (409,),
        example={"os-resetState": {"state": "available"}}),
    ("GET", P + "/restores"): Op("List restores",
                                 _collection("restores", RESTORE, "restores_links"),
                                 query=PAGING + _filters("status")),
    ("POST", P + "/restores"): Op(
        "Restore a checkpoint", _single("restore", RESTORE),
        "karbor.api.schemas.restores:create", (409,),
        example={"restore": {"provider_id": NOOP, "checkpoint_id": EXAMPLE_ID,
                             "restore_target": None, "parameters": {}}}),
    ("GET", P + "/restores/{}"): Op("Show a restore", _single("restore", RESTORE)),
    ("GET", P + "/verifications"): Op(
        "List verifications", _collection("verifications", VERIFICATION,
                                          "verifications_links"),
        query=PAGING + _filters("status")),
    ("POST", P + "/verifications"): Op(
        "Verify a checkpoint", _single("verification", VERIFICATION),
        "karbor.api.schemas.verifications:create", (409,),
        example={"verification": {"provider_id": NOOP, "checkpoint_id": EXAMPLE_ID,
                                  "parameters": {}}}),
    ("GET", P + "/verifications/{}"): Op("Show a verification",
                                         _single("verification", VERIFICATION)),
    ("GET", P + "/operation_logs"): Op(
        "List operation logs",
        _collection("operation_logs", OPERATION_LOG, "operation_logs_links"),
        query=PAGING + _filters("checkpoint_id", "plan_id", "restore_id", "status")),
    ("GET", P + "/operation_logs/{}"): Op("Show an operation log",
                                          _single("operation_log", OPERATION_LOG)),
    ("GET", P + "/triggers"): Op("List triggers",
                                 _collection("triggers", TRIGGER, "triggers_links"),
                                 query=PAGING + _filters("name", "type", "properties")),
    ("POST", P + "/triggers"): Op(
        "Create a trigger", _single("trigger_info", TRIGGER),
        "karbor.api.schemas.triggers:create",
        example={"trigger_info": {"name": "weekly", "type": "time",
                                  "properties": {"format": "calendar", "pattern": CALENDAR,
                                                 "start_time": "2030-01-01 00:00:00",
                                                 "window": 900}}}),
    ("GET", P + "/triggers/{}"): Op("Show a trigger", _single("trigger_info", TRIGGER)),
    ("PUT", P + "/triggers/{}"): Op("Update a trigger", _single("trigger_info", TRIGGER),
                                    "karbor.api.schemas.triggers:update",
                                    example={"trigger_info": {"name": "renamed"}}),
    ("DELETE", P + "/triggers/{}"): Op("Delete a trigger", None, errors=(424,)),
    ("GET", P + "/scheduled_operations"): Op(
        "List scheduled operations",
        _collection("operations", SCHEDULED_OPERATION, "operations_links"),
        query=PAGING + _filters("name", "operation_type", "trigger_id",
                                "operation_definition")),
    ("POST", P + "/scheduled_operations"): Op(
        "Create a scheduled operation", _single("scheduled_operation", SCHEDULED_OPERATION),
        "karbor.api.schemas.scheduled_operations:create",
        example={"scheduled_operation": {
            "name": "weekly backup", "description": "protect every week",
            "operation_type": "protect", "trigger_id": EXAMPLE_ID,
            "operation_definition": {"provider_id": NOOP, "plan_id": EXAMPLE_ID}}}),
    ("GET", P + "/scheduled_operations/{}"): Op(
        "Show a scheduled operation", _single("scheduled_operation", SCHEDULED_OPERATION)),
    ("PUT", P + "/scheduled_operations/{}"): Op(
        "Rename, enable or disable a scheduled operation",
        _single("scheduled_operation", SCHEDULED_OPERATION),
        "karbor.api.schemas.scheduled_operations:update",
        example={"scheduled_operation": {"enabled": False}}),
    ("DELETE", P + "/scheduled_operations/{}"): Op("Delete a scheduled operation", None),
    ("GET", P + "/os-services"): Op("List services (admin)",
                                    _obj({"services": _arr(SERVICE)}),
                                    query=_filters("host", "binary")),
    ("PUT", P + "/os-services/{}"): Op(
        "Enable or disable a service (admin)", _single("service", SERVICE),
        "karbor.api.openapi:SERVICE_UPDATE",
        example={"status": "disabled", "disabled_reason": "maintenance"}),
    ("GET", P + "/quotas/{}"): Op("Show a project's quotas",
                                  _single("quota", _obj({**LIMITS, "id": _str()}))),
    ("PUT", P + "/quotas/{}"): Op("Update a project's quotas (admin)",
                                  _single("quota", _obj(LIMITS)),
                                  "karbor.api.openapi:QUOTA_UPDATE",
                                  example={"quota": {"plans": 20, "checkpoints": -1}}),
    ("DELETE", P + "/quotas/{}"): Op("Remove a project's quota overrides (admin)", None),
    ("GET", P + "/quotas/{}/detail"): Op(
        "Show a project's quotas and usage",
        _single("quota", _obj({"plans": USAGE, "checkpoints": USAGE, "id": _str()}))),
    ("GET", P + "/quotas/{}/defaults"): Op(
        "Show the default quotas", _single("quota", _obj({**LIMITS, "id": _str()}))),
    ("GET", P + "/quota_classes/{}"): Op(
        "Show a quota class", _single("quota_class", _obj({**LIMITS, "id": _str()}))),
    ("PUT", P + "/quota_classes/{}"): Op(
        "Update a quota class (admin)", _single("quota_class", _obj(LIMITS)),
        "karbor.api.openapi:QUOTA_CLASS_UPDATE",
        example={"quota_class": {"plans": 20}}),
}

# Bodies validated inline by their controllers (same content, kept in step by the tests).
SERVICE_UPDATE = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["enabled", "disabled"]},
                   "disabled_reason": {"type": ["string", "null"], "maxLength": 255}},
    "required": ["status"],
    "additionalProperties": False,
}


def _limits_body(key: str) -> dict[str, Any]:
    from karbor.api.v1.quotas import LIMITS_BODY

    return {"type": "object", "properties": {key: LIMITS_BODY}, "required": [key],
            "additionalProperties": False}


def _request_schema(ref: str) -> dict[str, Any] | None:
    module_name, _, attribute = ref.partition(":")
    if ref == "karbor.api.openapi:QUOTA_UPDATE":
        return _limits_body("quota")
    if ref == "karbor.api.openapi:QUOTA_CLASS_UPDATE":
        return _limits_body("quota_class")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    schema = getattr(module, attribute, None)
    return schema if isinstance(schema, dict) else None


# --------------------------------------------------------------------------------------
# Path parameters

_PARAM_RE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
_NOT_UUID_PARAMS = {"resource_id", "service_id", "protectable_type", "class_name"}


def _path_param(name: str) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "path", "required": True}
    if name == "project_id":
        param["description"] = "The project of the token (anything else is a 400)."
        schema: dict[str, Any] = _str()
    elif name == "service_id":
        schema = {"type": "integer"}
    elif name == "protectable_type":
        schema = _str()
        param["example"] = constants.PROJECT_RESOURCE_TYPE
    elif name == "class_name":
        schema = _str(minLength=1, maxLength=255)
        param["example"] = "default"
    elif name in _NOT_UUID_PARAMS:
        schema = _str()
    elif name == "id" or name.endswith("_id") or name == "target_project":
        schema = _str(format="uuid")
        if name == "provider_id":
            param["example"] = NOOP
    else:
        schema = _str()
    param["schema"] = schema
    return param


def _routes() -> list[tuple[str, str, str, list[str]]]:
    """(method, flask rule, endpoint, argument names in order) of every v1 route."""
    from flask import Flask

    from karbor.api.v1 import router

    app = Flask("karbor.api.v1.openapi")
    router.register(app)
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.rule.startswith("/v1/"):
            continue
        arguments = _PARAM_RE.findall(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, rule.rule, rule.endpoint, arguments))
    return out


# --------------------------------------------------------------------------------------
# The document


def _ok(schema: dict[str, Any] | None, description: str = "Success.") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "headers": _request_id_header()}
    if schema is not None:
        response["content"] = {JSON: {"schema": schema}}
    return response


def _operation(method: str, rule: str, endpoint: str,
               arguments: list[str]) -> tuple[str, dict[str, Any]]:
    openapi_path = _PARAM_RE.sub(lambda m: "{" + m.group(1) + "}", rule)
    key = (method, _PARAM_RE.sub("{}", rule))
    op = OPS.get(key)
    if op is None:  # a route this document does not know yet: describe it generically
        op = Op(f"{method} {openapi_path}", {} if method != "DELETE" else None)
    segments = [s for s in openapi_path.split("/") if s and not s.startswith("{")]
    tag = segments[1] if len(segments) > 1 else "versions"
    operation: dict[str, Any] = {
        "operationId": endpoint, "summary": op.summary, "tags": [tag],
        "parameters": [_path_param(a) for a in arguments] + copy.deepcopy(op.query),
    }
    request_schema = _request_schema(op.body) if op.body else None
    if request_schema is None and method in ("POST", "PUT") and (op.body or key not in OPS):
        request_schema = {"type": "object"}  # the schema module is not there (yet)
    if request_schema is not None:
        media: dict[str, Any] = {"schema": convert(request_schema)}
        if op.example is not None:
            media["example"] = copy.deepcopy(op.example)
        operation["requestBody"] = {"required": True, "content": {JSON: media}}
    responses: dict[str, Any] = {"200": _ok(op.response)}
    for code in sorted(set(BASE_ERRORS) | set(op.errors)):
        responses[str(code)] = {"$ref": f"#/components/responses/{FAULTS[code][1]}"}
    operation["responses"] = responses
    return openapi_path, operation


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {
        "/": {"get": {
            "operationId": "versions", "summary": "API versions", "tags": ["versions"],
            "security": [],
            "responses": {"300": {"description": "The available API versions.",
                                  "headers": _request_id_header(),
                                  "content": {JSON: {"schema": VERSIONS}}}},
        }},
    }
    for method, rule, endpoint, arguments in _routes():
        path, operation = _operation(method, rule, endpoint, arguments)
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Karbor data protection API", "version": "1.0",
                 "description": "OpenStack Karbor v1 API (application data protection). "
                                "Every success is HTTP 200; errors carry the fault body "
                                '{"<faultName>": {"code": <int>, "message": "<text>"}}.'},
        "servers": [{"url": "/"}],
        "security": [{"token": []}],
        "tags": sorted(({"name": t} for t in {op["tags"][0] for item in paths.values()
                                              for op in item.values()}),
                       key=lambda t: t["name"]),
        "paths": dict(sorted(paths.items())),
        "components": _components(),
    }


def document() -> dict:
    """The OpenAPI 3.0 document (a fresh copy; building it is cached)."""
    return copy.deepcopy(_document())
