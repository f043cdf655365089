"""Reading plugin parameters that came through the original client.

``karbor restore-create --parameters resource_type=T,in_place=true`` sends every value as
a string, so a boolean parameter arrives as ``"true"``/``"false"`` as often as a JSON
boolean; ``bool("false")`` would be true and could restore over the original by mistake.
"""

from __future__ import annotations

from typing import Any

from oslo_utils import strutils

from karbor.common import exception


def flag(parameters: dict[str, Any], name: str, default: bool = False) -> bool:
    """A boolean parameter, from a JSON boolean or the strings true/false/yes/no/1/0."""
    value = parameters.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError:
        raise exception.InvalidInput(
            reason=f"parameter {name!r} must be true or false, not {value!r}") from None
