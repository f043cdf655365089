"""JSON-Schema validation of request bodies with messages that name the field."""

from __future__ import annotations

import uuid
from typing import Any

import jsonschema

from karbor.common import exception

_format_checker = jsonschema.FormatChecker()


@_format_checker.checks("uuid")
def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    return is_uuid_like(value)


@_format_checker.checks("name", raises=exception.InvalidInput)
def _is_name(value: Any) -> bool:
    if value is None or value == "":
        raise exception.InvalidInput(reason="The 'name' can not be None.")
    if isinstance(value, str) and not value.strip():
        raise exception.InvalidInput(reason="The 'name' can not be empty.")
    return True


def is_uuid_like(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)).replace("-", "") == value.replace("-", "").lower()
    except (ValueError, AttributeError):
        return False


def _field_path(error: jsonschema.ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path.append(missing)
    elif error.validator == "additionalProperties":
        extra = error.message.split("'")[1] if "'" in error.message else ""
        path.append(extra)
    return "/".join(p for p in path if p) or "body"


def validate(schema: dict[str, Any], body: Any) -> None:
    validator = jsonschema.Draft4Validator(schema, format_checker=_format_checker)
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return
    if isinstance(error.cause, exception.KarborException):
        raise exception.ValidationError(
            detail=f"Invalid input for field/attribute {_field_path(error)}. "
                   f"{error.cause.msg}")
    if error.validator == "required":
        detail = f"Missing required field/attribute {_field_path(error)}. {error.message}"
    elif error.validator == "additionalProperties":
        detail = (f"Invalid input for field/attribute {_field_path(error)}. "
                  f"Unexpected field: {error.message}")
    else:
        value = error.instance
        detail = (f"Invalid input for field/attribute {_field_path(error)}. "
                  f"Value: {value!r}. {error.message}")
    raise exception.ValidationError(detail=detail)


def check_uuid(value: str, what: str) -> None:
    if not is_uuid_like(value):
        raise exception.Invalid(f"Invalid {what} id provided.")
