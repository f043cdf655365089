from karbor.api.schemas import types

create = {
    "type": "object",
    "properties": {
        "verification": {
            "type": "object",
            "properties": {
                "provider_id": types.uuid,
                "checkpoint_id": types.uuid,
                "parameters": types.parameters,
            },
            "required": ["provider_id", "checkpoint_id"],
            "additionalProperties": False,
        },
    },
    "required": ["verification"],
    "additionalProperties": False,
}
