"""How a protection worker finds work when a jobboard is configured.

Three rules keep the jobboard an accelerator rather than a second source of truth:

* A job is only a pointer: a worker that claims one must still win the
  operation's compare-and-set in the database before it runs anything, so two
  jobs for one operation (a re-post racing the API's post) run it once.
* A job is consumed only once the database says the operation is over, by
  the worker that finished it or by whoever later finds it finished.  A
  SIGKILLed worker's job claim expires (its holder extends it with the
  database lease) and another worker claims it and resumes the operation.
* Every ``[coordination] reconcile_interval`` seconds each worker compares
  the table with the board and posts a job for every runnable operation that
  has none (Redis restarted, flushed, or was down when the API posted).  While
  Redis cannot be reached the worker polls the table itself, as without a
  jobboard.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable

from karbor.common.config import CONF
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.services.protection import queue
from karbor.services.protection.jobboard import Board, DispatchError, operation_id_of

LOG = logging.getLogger(__name__)

# A pending operation younger than this may still be on its way to the board
# (the API posts right after its commit): the reconciliation leaves it alone.
POST_GRACE_SECONDS = 5.0
# After Redis failed, poll the table this long before trying the board again.
BOARD_RETRY_SECONDS = 2.0

Start = Callable[[models.Operation, object | None], None]


class JobboardFeeder:
    """Feeds one worker from the jobboard and reconciles the board with the table.

    ``free_slots`` says how many more operations the worker may run now
    (``max_concurrent_operations`` is the worker's to enforce); ``start`` hands
    it an operation this worker has claimed in the database, with the job to
    consume when it is over (None when it came from the table directly).
    """

    def __init__(self, board: Board, worker_id: str, free_slots: Callable[[], int],
                 start: Start, lease_seconds: Callable[[], int]):
        self.board = board
        self.worker_id = worker_id
        self._free_slots = free_slots
        self._start = start
        self._lease_seconds = lease_seconds
        # Operations another worker holds: not worth claiming their job again
        # before their lease could have lapsed (monotonic deadline).
        self._not_before: dict[str, float] = {}
        self._board_down_until = 0.0
        self._board_down_logged = False

    # -- claiming --------------------------------------------------------------------------
    def claim_next(self) -> bool:
        """Start one operation if there is a free slot and work; True when one started."""
        if self._free_slots() <= 0:
            return False
        if time.monotonic() >= self._board_down_until:
            try:
                started = self._claim_from_board()
            except DispatchError as exc:
                self._board_failed(exc)
            else:
                self._board_back()
                return started
        return self._claim_from_table()

    def _claim_from_board(self) -> bool:
        now = time.monotonic()
        self._not_before = {k: v for k, v in self._not_before.items() if v > now}
        for job in self.board.jobs(only_unclaimed=True):
            op_id = operation_id_of(job)
            if op_id is None or op_id in self._not_before:
                continue
            if not self.board.claim(job, self.worker_id, expiry=self._lease_seconds()):
                continue  # another worker was faster
            try:
                with session_scope(write=True) as session:
                    found = queue.claim_operation(session, op_id, self.worker_id,
                                                  self._lease_seconds())
                    if found.operation is not None:
                        session.expunge(found.operation)
            except Exception:
                self.board.abandon(job, self.worker_id)
                raise
            if found.state == "claimed":
                try:
                    self._start(found.operation, job)
                except Exception:
                    self.board.abandon(job, self.worker_id)
                    raise
                return True
            if found.state in ("finished", "missing"):
                # A stale job: its operation ran already (or never existed here).
                self.board.consume(job, self.worker_id)
                continue
            # Busy: its worker is alive as far as the database knows.  Give the job
            # back and look again once that lease could have lapsed.
            self.board.abandon(job, self.worker_id)
            left = (found.busy_until - utcnow()).total_seconds() if found.busy_until else 0
            self._not_before[op_id] = time.monotonic() + max(1.0, left + 0.5)
        return False

    def _claim_from_table(self) -> bool:
        with session_scope(write=True) as session:
            op = queue.claim(session, self.worker_id, self._lease_seconds())
            if op is not None:
                session.expunge(op)
        if op is None:
            return False
        self._start(op, None)
        return True

    def _board_failed(self, exc: Exception) -> None:
        self._board_down_until = time.monotonic() + BOARD_RETRY_SECONDS
        if not self._board_down_logged:
            LOG.warning("jobboard unavailable, polling the database meanwhile: %s", exc)
            self._board_down_logged = True

    def _board_back(self) -> None:
        if self._board_down_logged:
            LOG.info("jobboard reachable again")
            self._board_down_logged = False

    # -- reconciliation --------------------------------------------------------------------
    def reconcile(self) -> int:
        """Post a job for every runnable operation without one; return how many were posted."""
        try:
            live = {operation_id_of(job) for job in self.board.jobs()}
        except DispatchError as exc:
            self._board_failed(exc)
            return 0  # claim_next polls the table while the board is down
        with session_scope() as session:
            runnable = queue.runnable_ids(
                session, utcnow() - dt.timedelta(seconds=POST_GRACE_SECONDS))
        missing = [op_id for op_id in runnable if op_id not in live]
        for op_id in missing:
            try:
                self.board.post(op_id)
            except DispatchError as exc:
                self._board_failed(exc)
                return 0
        if missing:
            LOG.info("posted %d operation(s) that had no job on the jobboard", len(missing))
        return len(missing)

    # -- loops -----------------------------------------------------------------------------
    def claim_loop(self, stop: threading.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            try:
                started = self.claim_next()
            except Exception:
                LOG.exception("could not look for operations to run")
                started = False
            if not started:
                wake.wait(CONF.operation_poll_interval)
                wake.clear()

    def reconcile_loop(self, stop: threading.Event) -> None:
        interval = CONF.coordination.reconcile_interval
        # A first scan soon after start: a cluster restarted together with an empty Redis
        # should not wait a whole interval.  Jitter: workers started together should not
        # all re-post the same jobs.
        wait = min(interval, POST_GRACE_SECONDS)
        while not stop.wait(wait * random.uniform(0.75, 1.0)):
            wait = interval
            try:
                self.reconcile()
            except Exception:
                LOG.exception("could not reconcile the operations table with the jobboard")
