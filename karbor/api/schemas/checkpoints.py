from karbor.api.schemas import types

create = {
    "type": "object",
    "properties": {
        "checkpoint": {
            "type": "object",
            "properties": {
                "plan_id": types.uuid,
                # The original client sends the hyphenated key; both are honoured.
                "extra-info": types.metadata,
                "extra_info": types.metadata,
            },
            "required": ["plan_id"],
            "additionalProperties": False,
        },
    },
    "required": ["checkpoint"],
    "additionalProperties": False,
}

update = {
    "type": "object",
    "properties": {
        "os-resetState": {
            "type": "object",
            "properties": {"state": {"type": "string", "enum": ["available", "error"]}},
            "required": ["state"],
            "additionalProperties": False,
        },
    },
    "required": ["os-resetState"],
    "additionalProperties": False,
}

_copy_item = {
    "type": "object",
    "properties": {
        "provider_id": types.uuid,
        "plan_id": types.uuid,
        "parameters": types.parameters,
    },
    "required": ["plan_id"],
    "additionalProperties": False,
}

copy = {
    "type": "object",
    "properties": {
        # The original server took an object; the copy spec writes a list of them.
        "copy": {"oneOf": [_copy_item, {"type": "array", "items": _copy_item, "minItems": 1,
                                        "maxItems": 100}]},
    },
    "required": ["copy"],
    "additionalProperties": False,
}
