"""Quotas per project (plans, checkpoints)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from karbor import quota
from karbor.api import common, validation
from karbor.api.app import json_response
from karbor.common import exception
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope

LIMITS_BODY = {
    "type": "object",
    "patternProperties": {"^[a-zA-Z0-9-_:.# ]{1,255}$": {}},
    "additionalProperties": False,
}


def parse_limits(values: dict) -> dict[str, int]:
    """Known resources as integers >= -1; unknown keys are ignored as in the original."""
    out = {}
    for key, value in (values or {}).items():
        if key not in quota.RESOURCES:
            continue
        if isinstance(value, bool):
            raise exception.InvalidInput(reason=f"Quota '{value}' for {key} should be integer.")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise exception.InvalidInput(
                reason=f"Quota '{value}' for {key} should be integer.") from None
        if str(number) != str(value).strip() and not isinstance(value, int):
            raise exception.InvalidInput(reason=f"Quota '{value}' for {key} should be integer.")
        if number < -1:
            raise exception.InvalidInput(reason=f"{key}: Quota limit must be -1 or greater.")
        if number > common.MAX_INT:
            raise exception.InvalidInput(
                reason=f"{key}: Quota limit must be at most {common.MAX_INT}.")
        out[key] = number
    return out


def _check_project(ctx, target: str) -> None:
    if not validation.is_uuid_like(target):
        raise exception.Invalid("Invalid project id provided.")
    if not ctx.is_admin and target != ctx.project_id:
        raise exception.NotAuthorized(
            f"Project {ctx.project_id} may not see the quotas of another project.")


def show(project_id, target_project):
    ctx = common.context()
    ctx.can("quota:get", {"project_id": target_project})
    _check_project(ctx, target_project)
    with session_scope() as session:
        limits = quota.limits(session, target_project, ctx.quota_class)
    return json_response({"quota": {**limits, "id": target_project}})


def detail(project_id, target_project):
    ctx = common.context()
    ctx.can("quota:get", {"project_id": target_project})
    _check_project(ctx, target_project)
    with session_scope() as session:
        limits = quota.limits(session, target_project, ctx.quota_class)
        usage = quota.usage(session, target_project)
    body = {r: {"limit": limits[r], **usage[r]} for r in quota.RESOURCES}
    return json_response({"quota": {**body, "id": target_project}})


def defaults(project_id, target_project):
    ctx = common.context()
    ctx.can("quota:get_default", {"project_id": target_project})
    _check_project(ctx, target_project)
    with session_scope() as session:
        values = quota.defaults(session)
    return json_response({"quota": {**values, "id": target_project}})


def update(project_id, target_project):
    ctx = common.context()
    ctx.can("quota:update")
    data = common.body({"type": "object", "properties": {"quota": LIMITS_BODY},
                        "required": ["quota"], "additionalProperties": False})
    if not validation.is_uuid_like(target_project):
        raise exception.Invalid("Invalid project id provided.")
    values = parse_limits(data["quota"])
    with session_scope(write=True) as session:
        for resource, limit in values.items():
            row = session.scalar(select(models.Quota).where(
                models.Quota.project_id == target_project, models.Quota.resource == resource,
                models.Quota.deleted == False))  # noqa: E712
            if row is None:
                session.add(models.Quota(project_id=target_project, resource=resource,
                                         hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        limits = quota.limits(session, target_project)
    return json_response({"quota": limits})


def delete(project_id, target_project):
    ctx = common.context()
    ctx.can("quota:delete")
    if not validation.is_uuid_like(target_project):
        raise exception.Invalid("Invalid project id provided.")
    with session_scope(write=True) as session:
        for row in session.scalars(select(models.Quota).where(
                models.Quota.project_id == target_project,
                models.Quota.deleted == False)):  # noqa: E712
            row.deleted = True
            row.deleted_at = utcnow()
    return json_response(None)


def register(app: Flask) -> None:
    base = "/v1/<project_id>/quotas/<target_project>"
    app.add_url_rule(base, "quotas_show", show, methods=["GET"])
    app.add_url_rule(base, "quotas_update", update, methods=["PUT"])
    app.add_url_rule(base, "quotas_delete", delete, methods=["DELETE"])
    app.add_url_rule(base + "/detail", "quotas_detail", detail, methods=["GET"])
    app.add_url_rule(base + "/defaults", "quotas_defaults", defaults, methods=["GET"])
