"""Scheduled-operation request bodies.

The retention numbers may be integer strings because the CLI sends every
``k=v`` value as a string; the controller checks that they are integers.
"""

from karbor.api.schemas import types

_count = {"type": ["integer", "string"]}

create = {
    "type": "object",
    "properties": {
        "scheduled_operation": {
            "type": "object",
            "properties": {
                "name": types.name,
                "description": types.description,
                "operation_type": {"type": "string", "minLength": 1, "maxLength": 64},
                "trigger_id": types.uuid,
                "operation_definition": {
                    "type": "object",
                    "properties": {
                        "provider_id": types.uuid,
                        "plan_id": types.uuid,
                        "max_backups": _count,
                        "retention_duration": _count,
                    },
                    "required": ["provider_id", "plan_id"],
                    "additionalProperties": False,
                },
            },
            "required": ["name", "operation_type", "trigger_id", "operation_definition"],
            "additionalProperties": False,
        },
    },
    "required": ["scheduled_operation"],
    "additionalProperties": False,
}

# Not in the original API (it had no way to pause a schedule): rename, describe,
# enable or disable an operation.
update = {
    "type": "object",
    "properties": {
        "scheduled_operation": {
            "type": "object",
            "properties": {
                "name": types.name,
                "description": types.description,
                "enabled": {"type": "boolean"},
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
    },
    "required": ["scheduled_operation"],
    "additionalProperties": False,
}
