"""The operation engine: fires every occurrence of every scheduled operation exactly once.

Exactly once is the database's job, not timing's: an occurrence is claimed by
inserting its ``scheduled_operation_logs`` row, whose key (operation id,
occurrence time) is unique, in the same transaction that creates the
checkpoint.  Any number of engines may scan the same due operations; one
insert wins, the others see the conflict and move on, and an engine that dies
mid-transaction leaves nothing behind, so a surviving engine fires it.

Each operation's state row carries ``next_run_at``; a scan only looks at
operations that are due (or whose trigger changed, ``next_run_at`` NULL).
An occurrence found later than its trigger's window is recorded as skipped,
never run late.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import random
import threading
from collections.abc import Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from karbor.common import exception
from karbor.common.config import CONF
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.services.operationengine import operations, time_trigger

LOG = logging.getLogger(__name__)

STATE_SUCCESS = "success"
STATE_FAILED = "failed"
STATE_SKIPPED = "dropped_out_of_window"


class OperationEngine:
    def __init__(self, service_id: int | None = None,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.service_id = service_id
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._triggers: dict[tuple[str, str], time_trigger.TimeTrigger] = {}

    # -- process lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="operation-engine",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._disabled():
                    self.scan()
            except Exception:
                LOG.exception("operation engine scan failed")
            self._stop.wait(CONF.trigger_poll_interval)

    def _disabled(self) -> bool:
        if self.service_id is None:
            return False
        with session_scope() as session:
            service = session.get(models.Service, self.service_id)
            return bool(service and service.disabled)

    # -- scanning --------------------------------------------------------------------------
    def scan(self, now: dt.datetime | None = None) -> int:
        """Act on every due occurrence up to ``now``; return how many this engine recorded."""
        now = (now or self.clock()).replace(microsecond=0)
        with session_scope() as session:
            due = session.execute(
                select(models.ScheduledOperation, models.Trigger,
                       models.ScheduledOperationState)
                .join(models.Trigger, models.Trigger.id == models.ScheduledOperation.trigger_id)
                .join(models.ScheduledOperationState,
                      models.ScheduledOperationState.operation_id
                      == models.ScheduledOperation.id)
                .where(models.ScheduledOperation.deleted == False,  # noqa: E712
                       models.ScheduledOperation.enabled == True,  # noqa: E712
                       models.Trigger.deleted == False,  # noqa: E712
                       models.ScheduledOperationState.deleted == False,  # noqa: E712
                       or_(models.ScheduledOperationState.next_run_at.is_(None),
                           models.ScheduledOperationState.next_run_at <= now))
                .order_by(models.ScheduledOperationState.next_run_at)).all()
        # Engines scanning together would otherwise queue behind each other on the same
        # operations; in a random order each mostly finds work nobody else holds.
        due = list(due)
        random.shuffle(due)
        recorded = 0
        for op, trigger_row, state in due:
            if self._stop.is_set():
                break
            try:
                recorded += self._handle(op, trigger_row, state, now)
            except Exception:
                LOG.exception("scheduled operation %s could not be handled", op.id)
        return recorded

    def _trigger(self, row: models.Trigger) -> time_trigger.TimeTrigger:
        key = (row.id, row.properties)
        trigger = self._triggers.get(key)
        if trigger is None:
            trigger = time_trigger.load(json.loads(row.properties))
            if len(self._triggers) > 50000:
                self._triggers.clear()
            self._triggers[key] = trigger
        return trigger

    def _handle(self, op, trigger_row, state, now: dt.datetime) -> int:
        trigger = self._trigger(trigger_row)
        since = state.last_occurrence or op.created_at.replace(microsecond=0)
        due = list(itertools.islice(
            itertools.takewhile(lambda t: t <= now, trigger.occurrences(since)),
            CONF.max_occurrences_per_scan))
        recorded = 0
        for occurrence in due:
            in_window = now <= occurrence + dt.timedelta(seconds=trigger.window)
            if self._fire(op, occurrence, now, run=in_window):
                recorded += 1
        last = due[-1] if due else state.last_occurrence
        upcoming = trigger.next_occurrence(last or since)
        with session_scope(write=True) as session:
            values = {"next_run_at": upcoming or dt.datetime(9999, 1, 1),
                      "service_id": self.service_id}
            if last is not None:
                values["last_occurrence"] = last
            # Only move forward: a slower engine must not rewind a faster one's progress.
            cond = [models.ScheduledOperationState.id == state.id]
            if last is not None:
                cond.append(or_(models.ScheduledOperationState.last_occurrence.is_(None),
                                models.ScheduledOperationState.last_occurrence <= last))
            session.execute(update(models.ScheduledOperationState).where(*cond)
                            .values(**values))
        if due:
            self._prune_logs(op.id)
        return recorded

    def _fire(self, op, occurrence: dt.datetime, now: dt.datetime, *, run: bool) -> bool:
        """Claim one occurrence and act on it; False when another engine already had it."""
        with session_scope(write=True) as session:
            # The unique key only guards occurrences whose log still exists: another
            # engine may have handled this one and already pruned its log (past
            # retained_operation_log_number) while our view of the operation was
            # stale.  Its recorded progress tells; the share lock keeps that progress,
            # and hence the pruning that follows it, from moving until we commit.
            row = session.execute(
                select(models.ScheduledOperationState.last_occurrence,
                       models.ScheduledOperation.deleted, models.ScheduledOperation.enabled)
                .join(models.ScheduledOperation, models.ScheduledOperation.id
                      == models.ScheduledOperationState.operation_id)
                .where(models.ScheduledOperationState.operation_id == op.id)
                .with_for_update(read=True, of=models.ScheduledOperationState)).first()
            if row is None or row.deleted or not row.enabled:
                return False  # deleted or disabled since the scan read it
            if row.last_occurrence is not None and occurrence <= row.last_occurrence:
                return False
            log = models.ScheduledOperationLog(
                operation_id=op.id, expect_start_time=occurrence, triggered_time=now,
                actual_start_time=now if run else None,
                state="in_progress" if run else STATE_SKIPPED)
            try:
                with session.begin_nested():
                    session.add(log)
                    session.flush()  # the unique key decides here who owns the occurrence
            except IntegrityError:
                return False
            if not run:
                log.end_time = now
                log.extend_info = json.dumps({"reason": "the engine was not running "
                                                        "during the trigger's window"})
                return True
            try:
                with session.begin_nested():
                    result = operations.run(session, op, occurrence, now)
            except (exception.KarborException, ValueError, KeyError) as exc:
                reason = exc.msg if isinstance(exc, exception.KarborException) else str(exc)
                LOG.warning("scheduled operation %s at %s failed: %s", op.id, occurrence,
                            reason)
                log.state = STATE_FAILED
                log.extend_info = json.dumps({"error": reason})
            else:
                log.state = STATE_SUCCESS
                log.extend_info = json.dumps(result)
            log.end_time = utcnow()
            return True

    def _prune_logs(self, operation_id: str) -> None:
        keep = CONF.retained_operation_log_number
        with session_scope(write=True) as session:
            cutoff = session.scalar(
                select(models.ScheduledOperationLog.expect_start_time)
                .where(models.ScheduledOperationLog.operation_id == operation_id)
                .order_by(models.ScheduledOperationLog.expect_start_time.desc())
                .offset(keep).limit(1))
            if cutoff is not None:
                session.execute(delete(models.ScheduledOperationLog).where(
                    models.ScheduledOperationLog.operation_id == operation_id,
                    models.ScheduledOperationLog.expect_start_time <= cutoff))
