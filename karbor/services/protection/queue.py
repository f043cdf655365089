"""The durable operation queue: the seam between the API (producer) and the workers.

The API calls ``submit`` inside the same transaction that writes the record the
operation acts on, so an accepted request is never lost and a rejected one
leaves nothing behind.  Workers ``claim`` operations with a lease and renew it
while they run; an operation whose lease lapsed (its worker died) is claimed
again by any worker, which resumes it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from karbor.common import constants
from karbor.common.context import RequestContext
from karbor.db import models
from karbor.db.models import utcnow


def submit(session: Session, context: RequestContext, operation_type: str, provider_id: str,
           *, project_id: str, checkpoint_id: str | None = None,
           restore_id: str | None = None, verification_id: str | None = None,
           source_checkpoint_id: str | None = None, plan_id: str | None = None,
           parameters: dict | None = None, log_status: str,
           scheduled_operation_id: str | None = None) -> models.Operation:
    now = utcnow()
    log = models.OperationLog(
        id=str(uuid.uuid4()), project_id=project_id, operation_type=operation_type,
        checkpoint_id=checkpoint_id, plan_id=plan_id, provider_id=provider_id,
        restore_id=restore_id, verification_id=verification_id,
        scheduled_operation_id=scheduled_operation_id, status=log_status, started_at=now)
    op = models.Operation(
        id=str(uuid.uuid4()), operation_type=operation_type, project_id=project_id,
        provider_id=provider_id, checkpoint_id=checkpoint_id, restore_id=restore_id,
        verification_id=verification_id, source_checkpoint_id=source_checkpoint_id,
        operation_log_id=log.id, parameters=json.dumps(parameters or {}),
        context=json.dumps(context.to_dict()), status=constants.JOB_PENDING, attempts=0)
    session.add(log)
    session.add(op)
    return op


def claim(session: Session, worker_id: str, lease_seconds: int) -> models.Operation | None:
    """Take the oldest runnable operation: pending, or running with an expired lease."""
    now = utcnow()
    candidates = session.scalars(
        select(models.Operation).where(or_(
            models.Operation.status == constants.JOB_PENDING,
            (models.Operation.status == constants.JOB_RUNNING)
            & (models.Operation.claimed_until < now)))
        .order_by(models.Operation.created_at).limit(5)).all()
    for op in candidates:
        until = now + dt.timedelta(seconds=lease_seconds)
        # Compare-and-set on the fields we read: only one worker can win.
        result = session.execute(
            update(models.Operation)
            .where(models.Operation.id == op.id, models.Operation.status == op.status,
                   models.Operation.attempts == op.attempts)
            .values(status=constants.JOB_RUNNING, claimed_by=worker_id, claimed_until=until,
                    attempts=op.attempts + 1))
        if result.rowcount == 1:
            session.flush()
            session.refresh(op)
            return op
    return None


def renew(session: Session, operation_id: str, worker_id: str, lease_seconds: int) -> bool:
    until = utcnow() + dt.timedelta(seconds=lease_seconds)
    result = session.execute(
        update(models.Operation)
        .where(models.Operation.id == operation_id, models.Operation.claimed_by == worker_id,
               models.Operation.status == constants.JOB_RUNNING)
        .values(claimed_until=until))
    return result.rowcount == 1


def finish(session: Session, operation_id: str, worker_id: str, error: str | None) -> None:
    session.execute(
        update(models.Operation)
        .where(models.Operation.id == operation_id, models.Operation.claimed_by == worker_id)
        .values(status=constants.JOB_FAILED if error else constants.JOB_DONE,
                error=error, finished_at=utcnow(), claimed_until=None))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_local(session: Session, hostname: str) -> int:
    """Make operations claimed by dead worker processes of this host runnable at once.

    Worker ids are ``host:pid:nonce``; a restarted embedded server need not
    wait for the old lease to lapse.
    """
    count = 0
    rows = session.scalars(select(models.Operation).where(
        models.Operation.status == constants.JOB_RUNNING,
        models.Operation.claimed_by.like(f"{hostname}:%"))).all()
    for op in rows:
        try:
            pid = int((op.claimed_by or "").split(":")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            session.execute(update(models.Operation).where(
                models.Operation.id == op.id, models.Operation.claimed_by == op.claimed_by)
                .values(status=constants.JOB_PENDING, claimed_by=None, claimed_until=None))
            count += 1
    return count
