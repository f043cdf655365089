"""Shared building blocks of the request schemas (same shapes as the original API)."""

KEY_PATTERN = "^[a-zA-Z0-9-_:.# ]{1,255}$"

name = {"type": ["string", "null"], "minLength": 0, "maxLength": 255, "format": "name"}
description = {"type": ["string", "null"], "minLength": 0, "maxLength": 255}
uuid = {"type": "string", "format": "uuid"}

metadata = {
    "type": ["object", "null"],
    "patternProperties": {KEY_PATTERN: {"type": ["boolean", "string", "integer", "number",
                                                 "null"]}},
    "additionalProperties": False,
}

parameters = {
    "type": "object",
    "patternProperties": {KEY_PATTERN: {
        "type": ["object", "null"],
        "patternProperties": {KEY_PATTERN: {}},
        "additionalProperties": False,
    }},
    "additionalProperties": False,
}

resource = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 255},
        "type": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "maxLength": 255},
        "extra_info": {},
    },
    "required": ["id", "type", "name"],
    "additionalProperties": False,
}

resources = {"type": "array", "items": resource, "minItems": 1}
