"""A protection worker: claims operations from the durable queue and runs them.

Each running operation's lease is renewed by a heartbeat; if this process dies
the lease lapses and any worker (or this one, restarted) claims and resumes it.

Without ``[coordination] backend_url`` the worker polls the table every
``operation_poll_interval``; with it, a ``dispatch.JobboardFeeder`` hands it
the operations posted to the jobboard and the claims on their jobs are
extended together with the database leases.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from karbor.common.config import CONF
from karbor.db.session import session_scope
from karbor.services.protection import dispatch, jobboard, queue
from karbor.services.protection import provider as provider_mod
from karbor.services.protection.engine import Engine, OperationFailed

LOG = logging.getLogger(__name__)


class ProtectionWorker:
    def __init__(self, worker_id: str | None = None):
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.engine = Engine(self.worker_id)
        self._max = CONF.max_concurrent_operations
        self._pool = ThreadPoolExecutor(max_workers=self._max, thread_name_prefix="protect")
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._jobs: dict[str, object] = {}  # operation id -> its jobboard job, while it runs
        self.feeder: dispatch.JobboardFeeder | None = None
        if jobboard.enabled():
            jobboard.check_config()
            self.feeder = dispatch.JobboardFeeder(
                jobboard.Board(CONF.coordination.backend_url), self.worker_id,
                self.free_slots, self._start_operation, self._lease_seconds)

    def start(self) -> None:
        try:
            with session_scope(write=True) as session:
                released = queue.release_dead_local(session, socket.gethostname())
            if released:
                LOG.info("resuming %d operation(s) left by a stopped worker on this host",
                         released)
        except Exception:
            LOG.exception("could not look for operations of stopped local workers")
        loops = [(self._lease_loop, (), "protection-lease")]
        if self.feeder is None:
            loops.append((self._poll_loop, (), "protection-poll"))
        else:
            loops += [(self.feeder.claim_loop, (self._stop, self._wake), "protection-jobboard"),
                      (self.feeder.reconcile_loop, (self._stop,), "protection-reconcile")]
        for target, args, name in loops:
            t = threading.Thread(target=target, args=args, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        LOG.info("protection worker %s started", self.worker_id)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)
        if self.feeder is not None:
            self.feeder.board.close()

    def free_slots(self) -> int:
        with self._lock:
            return self._max - len(self._running)

    def _start_operation(self, op, job=None) -> None:
        """Run an operation this worker has claimed in the database (and its job, if any)."""
        with self._lock:
            self._running.add(op.id)
            if job is not None:
                self._jobs[op.id] = job
        self._pool.submit(self._run, op)

    def _lease_seconds(self) -> int:
        return CONF.operation_claim_timeout

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            claimed = False
            with self._lock:
                free = self._max - len(self._running)
            if free > 0:
                try:
                    with session_scope(write=True) as session:
                        op = queue.claim(session, self.worker_id, self._lease_seconds())
                        if op is not None:
                            session.expunge(op)
                except Exception:
                    LOG.exception("could not poll the operation queue")
                    op = None
                if op is not None:
                    claimed = True
                    self._start_operation(op)
            if not claimed:
                self._wake.wait(CONF.operation_poll_interval)
                self._wake.clear()

    def _lease_loop(self) -> None:
        interval = max(1.0, self._lease_seconds() / 3)
        while not self._stop.wait(interval):
            with self._lock:
                running = list(self._running)
            if running:
                provider_mod.registry().renew_leases()
            for op_id in running:
                try:
                    with session_scope(write=True) as session:
                        queue.renew(session, op_id, self.worker_id, self._lease_seconds())
                except Exception:
                    LOG.exception("could not renew the lease of operation %s", op_id)
            # After the database leases, so a job never outlives its lease by much less
            # than the other way round: whoever claims it next finds the lease lapsed.
            with self._lock:
                jobs = list(self._jobs.values())
            for job in jobs:
                try:
                    self.feeder.board.extend(job, self._lease_seconds())
                except Exception as exc:
                    LOG.warning("could not extend the claim of jobboard job %s: %s",
                                getattr(job, "uuid", job), exc)

    def _run(self, op) -> None:
        error = None
        try:
            LOG.info("running %s operation %s (attempt %d)", op.operation_type, op.id,
                     op.attempts)
            self.engine.run(op)
        except OperationFailed as exc:
            error = str(exc)
            LOG.warning("%s operation %s failed: %s", op.operation_type, op.id, error)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            LOG.exception("%s operation %s crashed", op.operation_type, op.id)
            try:
                self.engine.fail(op, error)
            except Exception:
                LOG.exception("could not record the failure of operation %s", op.id)
        finally:
            finished = False
            try:
                with session_scope(write=True) as session:
                    queue.finish(session, op.id, self.worker_id, error)
                finished = True
            except Exception:
                LOG.exception("could not record the end of operation %s", op.id)
            with self._lock:
                job = self._jobs.pop(op.id, None)
            if job is not None:
                self._release_job(op.id, job, finished)
            with self._lock:
                self._running.discard(op.id)
            self._wake.set()

    def _release_job(self, op_id: str, job, finished: bool) -> None:
        """Consume the job of a finished operation; otherwise let another worker look."""
        try:
            if finished:
                self.feeder.board.consume(job, self.worker_id)
            else:
                self.feeder.board.abandon(job, self.worker_id)
        except Exception as exc:
            # Its claim expires; whoever claims it next finds the operation's state.
            LOG.warning("could not release the jobboard job of operation %s: %s", op_id, exc)
