from karbor.api.schemas import types

create = {
    "type": "object",
    "properties": {
        "restore": {
            "type": "object",
            "properties": {
                "provider_id": types.uuid,
                "checkpoint_id": types.uuid,
                "parameters": types.parameters,
                "restore_target": {"type": ["string", "null"], "maxLength": 255},
                "restore_auth": types.metadata,
            },
            "required": ["provider_id", "checkpoint_id"],
            "additionalProperties": False,
        },
    },
    "required": ["restore"],
    "additionalProperties": False,
}
