"""The durable operation queue: the seam between the API (producer) and the workers.

The API calls ``submit`` inside the same transaction that writes the record the
operation acts on, so an accepted request is never lost and a rejected one
leaves nothing behind.  Workers ``claim`` operations with a lease and renew it
while they run; an operation whose lease lapsed (its worker died) is claimed
again by any worker, which resumes it.

With a jobboard (``[coordination] backend_url``) ``submit`` also arranges for a
job to be posted once the transaction has committed -- never before, so a
worker cannot look for an operation that is not visible yet, and never for a
rolled-back one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass

from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from karbor.common import constants
from karbor.common.context import RequestContext
from karbor.db import models
from karbor.db.models import utcnow
from karbor.services.protection import jobboard

_TO_POST = "karbor.operations_to_post"


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
    if jobboard.enabled():
        _post_after_commit(session, op.id)
    return op


def _post_after_commit(session: Session, operation_id: str) -> None:
    pending = session.info.get(_TO_POST)
    if pending is None:
        pending = session.info[_TO_POST] = []
        event.listen(session, "after_commit", _post_committed)
        event.listen(session, "after_rollback", _forget_rolled_back)
    pending.append(operation_id)


def _post_committed(session: Session) -> None:
    ids = session.info.pop(_TO_POST, None)
    if ids:
        jobboard.post_operations(ids)


def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_TO_POST, None)


def _runnable(now: dt.datetime):
    return or_(models.Operation.status == constants.JOB_PENDING,
               (models.Operation.status == constants.JOB_RUNNING)
               & (models.Operation.claimed_until < now))


def _take(session: Session, op: models.Operation, worker_id: str, lease_seconds: int,
          now: dt.datetime) -> bool:
    until = now + dt.timedelta(seconds=lease_seconds)
    # Compare-and-set on the fields we read: only one worker can win.
    result = session.execute(
        update(models.Operation)
        .where(models.Operation.id == op.id, models.Operation.status == op.status,
               models.Operation.attempts == op.attempts)
        .values(status=constants.JOB_RUNNING, claimed_by=worker_id, claimed_until=until,
                attempts=op.attempts + 1))
    if result.rowcount != 1:
        return False
    session.flush()
    session.refresh(op)
    return True


def claim(session: Session, worker_id: str, lease_seconds: int) -> models.Operation | None:
    """Take the oldest runnable operation: pending, or running with an expired lease."""
    now = utcnow()
    candidates = session.scalars(
        select(models.Operation).where(_runnable(now))
        .order_by(models.Operation.created_at).limit(5)).all()
    for op in candidates:
        if _take(session, op, worker_id, lease_seconds, now):
            return op
    return None


@dataclass
class Claim:
    """What claiming one named operation found.

    ``state`` is ``claimed`` (``operation`` is ours now), ``finished`` (done or
    failed: nothing to run), ``missing`` (no such operation) or ``busy`` (a
    worker holds a lease until ``busy_until``).
    """

    state: str
    operation: models.Operation | None = None
    busy_until: dt.datetime | None = None


def claim_operation(session: Session, operation_id: str, worker_id: str,
                    lease_seconds: int) -> Claim:
    """Claim the operation a jobboard job names, with the same compare-and-set as ``claim``."""
    now = utcnow()
    op = session.get(models.Operation, operation_id)
    if op is None:
        return Claim("missing")
    if op.status in (constants.JOB_DONE, constants.JOB_FAILED):
        return Claim("finished")
    if op.status == constants.JOB_RUNNING and op.claimed_until is not None \
            and op.claimed_until >= now:
        return Claim("busy", busy_until=op.claimed_until)
    if _take(session, op, worker_id, lease_seconds, now):
        return Claim("claimed", operation=op)
    session.refresh(op)
    return Claim("busy", busy_until=op.claimed_until or now)


def runnable_ids(session: Session, created_before: dt.datetime, limit: int = 1000) -> list[str]:
    """Operations a worker could claim now, oldest first; pending ones only when they are
    older than ``created_before`` (a younger one may still be on its way to the board)."""
    now = utcnow()
    return list(session.scalars(
        select(models.Operation.id).where(
            _runnable(now),
            or_(models.Operation.status != constants.JOB_PENDING,
                models.Operation.created_at < created_before))
        .order_by(models.Operation.created_at).limit(limit)).all())


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
