"""Scheduled operations: run a plan's protection whenever a trigger fires.

Everything the original checked in the engine over RPC (operation type,
provider, plan) is checked here before anything is stored, so a bad request
is a 400 instead of a 500 and never leaves a row behind.  The operation and
its ``registered`` state row are written in one transaction; the scheduler
picks both up from the database.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from karbor.api import common, validation
from karbor.api.app import json_response
from karbor.api.schemas import scheduled_operations as schemas
from karbor.common import constants, exception, keystone
from karbor.db import models, query
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.services.operationengine import trusts
from karbor.services.protection import provider as provider_mod

STATE_REGISTERED = "registered"
STATE_DELETED = "deleted"
RETENTION_TYPE = "retention_protect"
RETENTION_KEYS = ("max_backups", "retention_duration")
SORT_KEYS = {"id", "name", "description", "operation_type", "trigger_id", "created_at",
             "updated_at"}
ALLOWED_FILTERS = ["name", "operation_type", "trigger_id", "operation_definition"]
REGEX_FILTERS = ("name", "operation_definition")
EXACT_FILTERS = ("id", "operation_type", "trigger_id", "project_id")
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


def view(op: models.ScheduledOperation) -> dict:
    definition = common.loads(op.operation_definition, {})
    return {"id": op.id, "name": op.name, "description": op.description,
            "operation_type": op.operation_type, "trigger_id": op.trigger_id,
            "operation_definition": {k: str(v) for k, v in definition.items()},
            "enabled": op.enabled}


def get_operation(session, context, operation_id: str, *,
                  lock: bool = False) -> models.ScheduledOperation:
    """An operation the caller may see: another project's is 403, as in the original."""
    validation.check_uuid(operation_id, "operation")
    stmt = query.active(models.ScheduledOperation).where(
        models.ScheduledOperation.id == operation_id)
    if lock:
        stmt = stmt.with_for_update()
    op = session.scalar(stmt)
    if op is None:
        raise exception.ScheduledOperationNotFound(id=operation_id)
    context.can("scheduled_operation:get", {"project_id": op.project_id})
    return op


def _invalid_definition(why: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=f"Invalid operation definition: {why}")


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_TEXT.match(value):
        return int(value)
    raise _invalid_definition(f"{key} must be an integer, not {value!r}.")


def _definition(operation_type: str, given: dict[str, Any]) -> dict[str, str]:
    """The stored definition: strings only, as the original showed (and the CLI sends)."""
    definition = {"provider_id": given["provider_id"], "plan_id": given["plan_id"]}
    for key in RETENTION_KEYS:
        if key not in given:
            continue
        if operation_type != RETENTION_TYPE:
            raise _invalid_definition(f"{key} is only allowed for {RETENTION_TYPE} "
                                      "operations.")
        definition[key] = str(_as_int(key, given[key]))
    return definition


def _trigger_for(session, context, trigger_id: str) -> models.Trigger:
    # Locked so that a concurrent trigger delete cannot miss this operation.
    trigger = session.scalar(query.active(models.Trigger).where(
        models.Trigger.id == trigger_id).with_for_update())
    if trigger is None:
        raise exception.TriggerNotFound(id=trigger_id)
    if trigger.project_id != context.project_id:
        raise exception.Invalid("Invalid trigger id provided.")
    return trigger


def _check_plan(session, context, definition: dict[str, str]) -> None:
    provider_id, plan_id = definition["provider_id"], definition["plan_id"]
    provider_mod.registry().show_or_invalid(provider_id)
    plan = session.scalar(query.active(models.Plan).where(
        models.Plan.id == plan_id,
        models.Plan.project_id == context.project_id).with_for_update())
    if plan is None:
        raise _invalid_definition(f"plan_id {plan_id} is not a plan of this project.")
    if plan.provider_id != provider_id:
        raise _invalid_definition(f"provider_id {provider_id} conflicts with the provider "
                                  f"{plan.provider_id} of plan {plan_id}.")


def list_operations(project_id):
    ctx = common.context()
    ctx.can("scheduled_operation:list")
    params = common.list_params(ALLOWED_FILTERS, SORT_KEYS)
    with session_scope() as session:
        stmt = query.active(models.ScheduledOperation)
        if not (ctx.is_admin and params.all_tenants):
            stmt = stmt.where(models.ScheduledOperation.project_id == ctx.project_id)
        stmt = common.filter_clauses(stmt, models.ScheduledOperation, params.filters, REGEX_FILTERS,
                              EXACT_FILTERS, session)
        ops = query.paginate(session, stmt, models.ScheduledOperation,
                             sort_keys=params.sort_keys, sort_dirs=params.sort_dirs,
                             limit=params.limit, marker=params.marker, offset=params.offset,
                             not_found=exception.ScheduledOperationNotFound,
                             marker_kwarg="id")
        items = [view(op) for op in ops]
    return json_response({"operations": items,
                          **common.links("operations", items, params, "scheduled_operations")})


class _TrustGone(Exception):
    """The trust chosen for reuse lost its last operation meanwhile."""


def _check_request(session, ctx, data) -> tuple[models.Trigger, dict[str, str]]:
    trigger = _trigger_for(session, ctx, data["trigger_id"])
    operation_type = data["operation_type"]
    if operation_type not in constants.OPERATION_TYPES:
        raise exception.InvalidInput(reason=f"Invalid operation type: {operation_type}")
    definition = _definition(operation_type, data["operation_definition"])
    _check_plan(session, ctx, definition)
    return trigger, definition


def _store(ctx, data, trust_id: str | None, reused: bool) -> dict:
    with session_scope(write=True) as session:
        trigger, definition = _check_request(session, ctx, data)
        if reused and not trusts.holds_trust(session, trust_id, lock=True):
            raise _TrustGone()
        op = models.ScheduledOperation(
            id=str(uuid.uuid4()), name=data["name"], description=data.get("description"),
            operation_type=data["operation_type"], user_id=ctx.user_id or "",
            project_id=ctx.project_id, trigger_id=trigger.id,
            operation_definition=common.dumps(definition), enabled=True)
        session.add(op)
        session.flush()
        session.add(models.ScheduledOperationState(operation_id=op.id, trust_id=trust_id,
                                                   state=STATE_REGISTERED))
        session.flush()
        return view(op)


def _store_with_trust(ctx, data) -> dict:
    """Keystone mode: reuse the caller's trust in this project, or create one.

    The trust is created before the write transaction (no Keystone call holds the
    database) and deleted again if nothing ends up using it, so a failed request
    leaves neither rows nor trusts behind.
    """
    with session_scope() as session:
        _check_request(session, ctx, data)  # a bad request never reaches Keystone
        trust_id = trusts.reusable_trust(session, ctx.user_id, ctx.project_id)
    for _ in range(2):
        reused = trust_id is not None
        if not reused:
            trust_id = keystone.create_trust(ctx)
        try:
            return _store(ctx, data, trust_id, reused)
        except _TrustGone:
            trust_id = None
        except BaseException:
            if not reused:
                keystone.delete_trust(ctx, trust_id)
            raise
    raise exception.Conflict("The caller's trust changed meanwhile; try again.")


def create_operation(project_id):
    ctx = common.context()
    data = common.body(schemas.create)["scheduled_operation"]
    ctx.can("scheduled_operation:create")
    if keystone.enabled():
        result = _store_with_trust(ctx, data)
    else:
        result = _store(ctx, data, None, False)
    return json_response({"scheduled_operation": result})


def show_operation(project_id, operation_id):
    ctx = common.context()
    with session_scope() as session:
        op = get_operation(session, ctx, operation_id)
        return json_response({"scheduled_operation": view(op)})


def update_operation(project_id, operation_id):
    """Rename, describe, enable or disable.

    Disabled, an operation fires nothing; enabled again, it resumes with the next
    occurrence: the ones it missed while disabled are neither run nor recorded.
    """
    ctx = common.context()
    data = common.body(schemas.update)["scheduled_operation"]
    with session_scope(write=True) as session:
        op = get_operation(session, ctx, operation_id, lock=True)
        ctx.can("scheduled_operation:update", {"project_id": op.project_id})
        for key in ("name", "description"):
            if key in data:
                setattr(op, key, data[key])
        if "enabled" in data and data["enabled"] != op.enabled:
            op.enabled = data["enabled"]
            if op.enabled:
                now = utcnow().replace(microsecond=0)
                session.execute(update(models.ScheduledOperationState).where(
                    models.ScheduledOperationState.operation_id == op.id).values(
                    next_run_at=None, last_occurrence=now))
        op.updated_at = utcnow()
        session.flush()
        result = view(op)
    return json_response({"scheduled_operation": result})


def delete_operation(project_id, operation_id):
    ctx = common.context()
    unused_trusts = set()
    with session_scope(write=True) as session:
        op = get_operation(session, ctx, operation_id, lock=True)
        ctx.can("scheduled_operation:delete", {"project_id": op.project_id})
        now = utcnow()
        op.deleted = True
        op.deleted_at = now
        states = session.scalars(select(models.ScheduledOperationState).where(
            models.ScheduledOperationState.operation_id == op.id,
            models.ScheduledOperationState.deleted == False)).all()  # noqa: E712
        for state in states:
            state.state = STATE_DELETED
            state.deleted = True
            state.deleted_at = now
        session.flush()
        # Counted after our own rows are updated (and locked): see trusts.py.
        unused_trusts = {s.trust_id for s in states
                         if s.trust_id and not trusts.trust_in_use(session, s.trust_id)}
    for trust_id in unused_trusts:
        keystone.delete_trust(ctx, trust_id)
    return json_response(None)


def register(app: Flask) -> None:
    base = "/v1/<project_id>/scheduled_operations"
    app.add_url_rule(base, "scheduled_operations_list", list_operations, methods=["GET"])
    app.add_url_rule(base, "scheduled_operations_create", create_operation, methods=["POST"])
    app.add_url_rule(base + "/<operation_id>", "scheduled_operations_show", show_operation,
                     methods=["GET"])
    app.add_url_rule(base + "/<operation_id>", "scheduled_operations_update",
                     update_operation, methods=["PUT"])
    app.add_url_rule(base + "/<operation_id>", "scheduled_operations_delete",
                     delete_operation, methods=["DELETE"])
