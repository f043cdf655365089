"""Quota classes: named sets of default limits (``default`` applies to every project)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from karbor import quota
from karbor.api import common
from karbor.api.app import json_response
from karbor.api.v1.quotas import LIMITS_BODY, parse_limits
from karbor.common import exception
from karbor.db import models
from karbor.db.session import session_scope


def _limits(session, class_name: str) -> dict[str, int]:
    values = quota.defaults(session)
    values.update(quota.class_limits(session, class_name))
    return values


def _check_name(class_name: str) -> None:
    if not class_name or len(class_name) > 255:
        raise exception.InvalidInput(reason="class_name must be 1 to 255 characters long.")


def show(project_id, class_name):
    ctx = common.context()
    ctx.can("quota_class:get")
    _check_name(class_name)
    with session_scope() as session:
        values = _limits(session, class_name)
    return json_response({"quota_class": {**values, "id": class_name}})


def update(project_id, class_name):
    ctx = common.context()
    ctx.can("quota_class:update")
    _check_name(class_name)
    data = common.body({"type": "object", "properties": {"quota_class": LIMITS_BODY},
                        "required": ["quota_class"], "additionalProperties": False})
    values = parse_limits(data["quota_class"])
    with session_scope(write=True) as session:
        for resource, limit in values.items():
            row = session.scalar(select(models.QuotaClass).where(
                models.QuotaClass.class_name == class_name,
                models.QuotaClass.resource == resource,
                models.QuotaClass.deleted == False))  # noqa: E712
            if row is None:
                session.add(models.QuotaClass(class_name=class_name, resource=resource,
                                              hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        result = _limits(session, class_name)
    return json_response({"quota_class": result})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/quota_classes/<class_name>"
    app.add_url_rule(base, "quota_classes_show", show, methods=["GET"])
    app.add_url_rule(base, "quota_classes_update", update, methods=["PUT"])
