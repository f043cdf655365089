from karbor.api.schemas import types

create = {
    "type": "object",
    "properties": {
        "plan": {
            "type": "object",
            "properties": {
                "name": types.name,
                "description": types.description,
                "provider_id": types.uuid,
                "parameters": types.parameters,
                "resources": types.resources,
            },
            "required": ["name", "provider_id", "resources"],
            "additionalProperties": False,
        },
    },
    "required": ["plan"],
    "additionalProperties": False,
}

update = {
    "type": "object",
    "properties": {
        "plan": {
            "type": "object",
            "properties": {
                "name": types.name,
                "description": types.description,
                "status": {"type": "string", "enum": ["suspended", "started"]},
                "resources": types.resources,
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
    },
    "required": ["plan"],
    "additionalProperties": False,
}
