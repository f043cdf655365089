"""Trigger request bodies; the time maths (pattern, times, window range) is checked later.

``window`` may be an integer or an integer string: the CLI sends an integer,
but the view shows every property as a string and clients echo it back.
"""

from karbor.api.schemas import types

_time = {"type": "string", "minLength": 1, "maxLength": 64}

_properties = {
    "format": {"type": "string", "minLength": 1, "maxLength": 32},
    "pattern": {"type": "string", "minLength": 1, "maxLength": 4096},
    "start_time": _time,
    "end_time": _time,
    "window": {"type": ["integer", "string"]},
}

# On update ``null`` removes an optional property (back to no end / default window).
_update_properties = {**_properties,
                      "end_time": {**_time, "type": ["string", "null"]},
                      "window": {"type": ["integer", "string", "null"]}}

create = {
    "type": "object",
    "properties": {
        "trigger_info": {
            "type": "object",
            "properties": {
                "name": types.name,
                "type": {"type": "string", "minLength": 1, "maxLength": 64},
                "properties": {
                    "type": "object",
                    "properties": _properties,
                    "required": ["format", "pattern"],
                    "additionalProperties": False,
                },
            },
            "required": ["name", "type", "properties"],
            "additionalProperties": False,
        },
    },
    "required": ["trigger_info"],
    "additionalProperties": False,
}

update = {
    "type": "object",
    "properties": {
        "trigger_info": {
            "type": "object",
            "properties": {
                "name": types.name,
                "type": {"type": "string", "minLength": 1, "maxLength": 64},
                "properties": {
                    "type": "object",
                    "properties": _update_properties,
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
    },
    "required": ["trigger_info"],
    "additionalProperties": False,
}
