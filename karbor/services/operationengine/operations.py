"""What a scheduled operation does when its trigger fires: protect, then apply retention.

Both run inside the transaction that claims the occurrence, so an occurrence
either produces its checkpoint (and its retention deletes) or nothing at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from karbor.common import constants, exception, keystone
from karbor.common.context import RequestContext
from karbor.db import models
from karbor.db.session import session_scope
from karbor.services.operationengine import trusts
from karbor.services.protection import api as protection_api

LOG = logging.getLogger(__name__)


def owner_context(op: models.ScheduledOperation,
                  session: Session | None = None) -> RequestContext:
    """The operation's owner, as whom the engine acts.

    noauth: the stored user and project.  Keystone: the token of the operation's trust
    (the owner's user id, project, roles, token, token body and catalog).
    """
    if keystone.enabled():
        if session is None:
            with session_scope() as own:
                return trusts.owner_context(own, op)
        return trusts.owner_context(session, op)
    return RequestContext(user_id=op.user_id, user_name=op.user_id, project_id=op.project_id,
                          project_name=op.project_id, roles=["member", "reader"])


def _int_or_none(definition: dict, key: str) -> int | None:
    value = definition.get(key)
    if value in (None, ""):
        return None
    number = int(value)
    return number if number > 0 else None


def protect(session: Session, op: models.ScheduledOperation, definition: dict,
            occurrence: dt.datetime) -> dict:
    plan = session.scalar(
        select(models.Plan).options(selectinload(models.Plan.resources)).where(
            models.Plan.id == definition["plan_id"], models.Plan.deleted == False,  # noqa: E712
            models.Plan.project_id == op.project_id))
    if plan is None:
        raise exception.PlanNotFound(plan_id=definition["plan_id"])
    if plan.provider_id != definition["provider_id"]:
        raise exception.InvalidPlan(reason="the plan's provider is not the operation's provider")
    extra = {"created_by": "operation-engine", "trigger_id": op.trigger_id,
             "scheduled_operation_id": op.id,
             "occurrence": occurrence.strftime("%Y-%m-%d %H:%M:%S")}
    checkpoint = protection_api.protect(session, owner_context(op, session), plan, extra,
                                        scheduled_operation_id=op.id)
    return {"checkpoint_id": checkpoint.id, "plan_id": plan.id}


def retention(session: Session, op: models.ScheduledOperation, definition: dict,
              now: dt.datetime, keep_id: str) -> list[str]:
    """Delete the plan's oldest checkpoints beyond ``max_backups`` or ``retention_duration`` days.

    The checkpoint just created counts toward ``max_backups`` (so exactly N remain once
    it is available); only ``available`` checkpoints are ever deleted.
    """
    max_backups = _int_or_none(definition, "max_backups")
    duration = _int_or_none(definition, "retention_duration")
    if max_backups is None and duration is None:
        return []
    rows = session.scalars(select(models.Checkpoint).where(
        models.Checkpoint.plan_id == definition["plan_id"],
        models.Checkpoint.project_id == op.project_id,
        models.Checkpoint.copy_of.is_(None),
        models.Checkpoint.status.in_([constants.CHECKPOINT_STATUS_AVAILABLE,
                                      constants.CHECKPOINT_STATUS_PROTECTING]))
        .order_by(models.Checkpoint.created_at.desc(), models.Checkpoint.id.desc())).all()
    doomed: list[models.Checkpoint] = []
    if max_backups is not None:
        doomed.extend(rows[max_backups:])
    if duration is not None:
        cutoff = now - dt.timedelta(days=duration)
        doomed.extend(r for r in rows if r.created_at and r.created_at < cutoff)
    deleted = []
    context = owner_context(op, session)
    for cp in dict.fromkeys(doomed):
        if cp.id == keep_id or cp.status != constants.CHECKPOINT_STATUS_AVAILABLE:
            continue
        try:
            with session.begin_nested():
                protection_api.delete_checkpoint(session, context, cp)
            deleted.append(cp.id)
        except exception.KarborException as exc:
            LOG.warning("retention of %s could not delete checkpoint %s: %s", op.id, cp.id,
                        exc.msg)
    return deleted


def run(session: Session, op: models.ScheduledOperation, occurrence: dt.datetime,
        now: dt.datetime) -> dict:
    definition = json.loads(op.operation_definition)
    if op.operation_type not in constants.OPERATION_TYPES:
        raise exception.InvalidInput(reason=f"Invalid operation type: {op.operation_type}")
    result = protect(session, op, definition, occurrence)
    if op.operation_type == "retention_protect":
        result["deleted_checkpoints"] = retention(session, op, definition, now,
                                                  result["checkpoint_id"])
    return result
