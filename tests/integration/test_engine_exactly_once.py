"""Three operation-engine processes on one PostgreSQL database: every occurrence exactly once.

200 triggers fire every minute (the seed's calendar format, ``FREQ=MINUTELY;INTERVAL=1``,
exactly the default ``min_interval``), each used by one scheduled ``protect`` operation.
Three OS processes (``engine_runner.py``) run the production engine loop over a simulated
10 minutes on a clock 20 times faster than real time, agreed through a start timestamp
passed on their command lines.  Halfway -- just after the T0+5min occurrences became due,
so while the engines are busy firing them -- one engine is SIGKILLed.

At the end, for every operation and every occurrence T0+1min ... T0+10min there is exactly
one ``scheduled_operation_logs`` row, in state ``success``, and exactly one checkpoint made
by the engine for that occurrence (and its queued protect operation, its operation log and
one unit of checkpoint quota): nothing missed, nothing duplicated, nothing half-done.
The data is set up through the real WSGI app; only ``created_at`` of the operations is
moved before T0, the simulated start.  The triggers get a one-hour window: on a busy
machine three engines fall behind a 20-times-faster clock (all three walk the same due
operations, so they add safety, not throughput), and windows are not under test here.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from karbor.common import constants
from karbor.common.config import CONF
from karbor.db import models
from karbor.db.session import session_scope
from karbor.services.operationengine.engine import OperationEngine
from tests.unit.apiclient import Api

RUNNER = Path(__file__).with_name("engine_runner.py")
REPO = Path(__file__).resolve().parents[2]
NOOP = constants.NOOP_PROVIDER_ID
EVERY_MINUTE = "BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=1;\\nEND:VEVENT"
FMT = "%Y-%m-%d %H:%M:%S"

ENGINES = 3
PROJECTS = 10
OPERATIONS_PER_PROJECT = 20          # 200 operations (the plan quota is 50 per project)
MINUTES = 10
SPEED = 20.0                         # simulated seconds per real second
POLL = 0.05                          # real seconds between two scans of one engine
T0 = dt.datetime(2030, 6, 1, 12, 0, 0)
SIM_START = T0 - dt.timedelta(seconds=30)
KILL_AT = T0 + dt.timedelta(minutes=MINUTES // 2)
STARTUP = 4.0                        # real seconds the engines get to import and connect
WINDOW = 3600                        # simulated seconds an occurrence may start late
FINISH_TIMEOUT = 90.0                # real seconds after the last occurrence
OCCURRENCES = [T0 + dt.timedelta(minutes=k) for k in range(1, MINUTES + 1)]


def _setup(app) -> dict[str, str]:
    """200 plans, triggers and protect operations over the API; returns {operation: plan}."""
    plan_of: dict[str, str] = {}
    for _ in range(PROJECTS):
        api = Api(app, uuid.uuid4().hex)
        for i in range(OPERATIONS_PER_PROJECT):
            status, body = api.post("plans", {"plan": {
                "name": f"plan {i}", "provider_id": NOOP,
                "resources": [{"id": api.project, "type": "OS::Keystone::Project",
                               "name": "project"}]}})
            assert status == 200, body
            plan = body["plan"]["id"]
            status, body = api.post("triggers", {"trigger_info": {
                "name": f"every minute {i}", "type": "time", "properties": {
                    "format": "calendar", "pattern": EVERY_MINUTE,
                    "start_time": OCCURRENCES[0].strftime(FMT),
                    "end_time": OCCURRENCES[-1].strftime(FMT), "window": WINDOW}}})
            assert status == 200, body
            trigger = body["trigger_info"]["id"]
            status, body = api.post("scheduled_operations", {"scheduled_operation": {
                "name": f"protect {i}", "operation_type": "protect", "trigger_id": trigger,
                "operation_definition": {"plan_id": plan, "provider_id": NOOP}}})
            assert status == 200, body
            plan_of[body["scheduled_operation"]["id"]] = plan
    with session_scope(write=True) as session:
        session.execute(update(models.ScheduledOperation)
                        .where(models.ScheduledOperation.id.in_(list(plan_of)))
                        .values(created_at=T0 - dt.timedelta(minutes=1)))
        states = session.scalar(select(func.count()).select_from(models.ScheduledOperationState)
                                .where(models.ScheduledOperationState.operation_id.in_(
                                    list(plan_of))))
    assert states == len(plan_of)
    return plan_of


def _real(sim: dt.datetime, real_start: float) -> float:
    return real_start + (sim - SIM_START).total_seconds() / SPEED


def _count_logs(ops: list[str], occurrence: dt.datetime | None = None) -> int:
    with session_scope() as session:
        stmt = select(func.count()).select_from(models.ScheduledOperationLog).where(
            models.ScheduledOperationLog.operation_id.in_(ops))
        if occurrence is not None:
            stmt = stmt.where(models.ScheduledOperationLog.expect_start_time == occurrence)
        return session.scalar(stmt)


def _stats(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(int(line.split()[-1]) for line in path.read_text().splitlines() if line.strip())


def _spawn(db_url: str, real_start: float, tmp_path: Path, n: int) -> subprocess.Popen:
    log = open(tmp_path / f"engine{n}.log", "wb")  # noqa: SIM115 (closed with the test)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "KARBOR_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, str(RUNNER), "--db-url", db_url, "--real-start", f"{real_start:.3f}",
         "--sim-start", SIM_START.strftime(FMT), "--speed", str(SPEED), "--poll", str(POLL),
         "--stats", str(tmp_path / f"engine{n}.stats"), "--name", f"engine{n}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)


def test_three_engines_fire_every_occurrence_exactly_once_despite_sigkill(
        postgresql_server, in_process_karbor, tmp_path):
    db_url = postgresql_server.create_database()
    app = in_process_karbor(db_url)
    began = time.monotonic()
    plan_of = _setup(app)
    ops = list(plan_of)
    setup_seconds = time.monotonic() - began

    real_start = time.time() + STARTUP
    procs = [_spawn(db_url, real_start, tmp_path, n) for n in range(ENGINES)]
    victim = 1
    try:
        # -- halfway: SIGKILL one engine while the T0+5min occurrences are being fired
        time.sleep(max(0.0, _real(KILL_AT, real_start) - time.time()))
        for n, proc in enumerate(procs):
            assert proc.poll() is None, (n, (tmp_path / f"engine{n}.log").read_text())
        # ... once the first of them is recorded (the engines may run a little late)
        halfway = OCCURRENCES[MINUTES // 2 - 1]
        wait_until = time.time() + 30
        while _count_logs(ops, halfway) == 0 and time.time() < wait_until:
            time.sleep(0.01)
        before_kill = _stats(tmp_path / f"engine{victim}.stats")
        procs[victim].send_signal(signal.SIGKILL)
        killed_sim = SIM_START + dt.timedelta(seconds=(time.time() - real_start) * SPEED)
        procs[victim].wait(10)
        fired_at_kill = _count_logs(ops, halfway)
        assert before_kill > 0, "the engine to be killed had not fired anything yet"

        # -- the survivors finish the 10 minutes
        deadline = _real(OCCURRENCES[-1], real_start) + FINISH_TIMEOUT
        expected_total = len(ops) * len(OCCURRENCES)
        while time.time() < deadline and _count_logs(ops) < expected_total:
            time.sleep(0.2)
        finished_sim = SIM_START + dt.timedelta(seconds=(time.time() - real_start) * SPEED)
        # let one more simulated minute pass: nothing may fire after the triggers' end
        time.sleep(max(0.0, _real(OCCURRENCES[-1] + dt.timedelta(minutes=1), real_start)
                       - time.time()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for n, proc in enumerate(procs):
            try:
                codes[n] = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[n] = proc.wait(10)
    logs_text = {n: (tmp_path / f"engine{n}.log").read_text(errors="replace")
                 for n in range(ENGINES)}
    assert codes[victim] == -signal.SIGKILL
    for n in range(ENGINES):
        if n != victim:
            assert codes[n] == 0, f"engine{n} exited with {codes[n]}:\n{logs_text[n][-5000:]}"
            assert "Traceback" not in logs_text[n], logs_text[n][-5000:]

    # -- every occurrence: exactly one log, in state success, naming its checkpoint
    expected = {(op, t) for op in ops for t in OCCURRENCES}
    with session_scope() as session:
        logs = session.execute(select(
            models.ScheduledOperationLog.operation_id,
            models.ScheduledOperationLog.expect_start_time,
            models.ScheduledOperationLog.triggered_time,
            models.ScheduledOperationLog.state,
            models.ScheduledOperationLog.extend_info)
            .where(models.ScheduledOperationLog.operation_id.in_(ops))).all()
        checkpoints = session.execute(select(
            models.Checkpoint.id, models.Checkpoint.plan_id, models.Checkpoint.status,
            models.Checkpoint.extra_info, models.Checkpoint.created_at)
            .where(models.Checkpoint.plan_id.in_(list(plan_of.values())))).all()
        queued = session.scalar(select(func.count()).select_from(models.Operation).where(
            models.Operation.checkpoint_id.in_([c.id for c in checkpoints])))
        op_logs = session.scalar(select(func.count()).select_from(models.OperationLog).where(
            models.OperationLog.scheduled_operation_id.in_(ops)))
        quota_in_use = session.scalar(select(func.sum(models.QuotaUsage.in_use)).where(
            models.QuotaUsage.resource == "checkpoints"))
        states = session.execute(select(
            models.ScheduledOperationState.operation_id,
            models.ScheduledOperationState.last_occurrence)
            .where(models.ScheduledOperationState.operation_id.in_(ops))).all()

    per_occurrence = collections.Counter((log.operation_id, log.expect_start_time)
                                         for log in logs)
    missing = expected - set(per_occurrence)
    extra = set(per_occurrence) - expected
    duplicated = {k: n for k, n in per_occurrence.items() if n != 1}
    assert not missing, f"{len(missing)} occurrences never fired, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} unexpected occurrences, e.g. {sorted(extra)[:5]}"
    assert not duplicated, f"occurrences logged more than once: {list(duplicated.items())[:5]}"
    bad_states = collections.Counter(log.state for log in logs if log.state != "success")
    assert not bad_states, f"occurrences not successful: {bad_states}"
    checkpoint_of_log = {(log.operation_id, log.expect_start_time):
                         json.loads(log.extend_info)["checkpoint_id"] for log in logs}

    # -- every occurrence: exactly one checkpoint, made by the engine for that occurrence
    op_of_plan = {plan: op for op, plan in plan_of.items()}
    per_checkpoint = collections.Counter()
    lags = []
    for cp in checkpoints:
        extra_info = json.loads(cp.extra_info)
        assert extra_info["created_by"] == "operation-engine", extra_info
        op = extra_info["scheduled_operation_id"]
        assert op == op_of_plan[cp.plan_id]
        occurrence = dt.datetime.strptime(extra_info["occurrence"], FMT)
        per_checkpoint[(op, occurrence)] += 1
        created = cp.created_at.replace(tzinfo=dt.UTC).timestamp()
        lags.append((created - _real(occurrence, real_start)) * SPEED)
        assert checkpoint_of_log[(op, occurrence)] == cp.id
        assert cp.status == constants.CHECKPOINT_STATUS_PROTECTING  # no protection worker
    assert set(per_checkpoint) == expected
    assert set(per_checkpoint.values()) == {1}
    assert len(checkpoints) == len(expected)
    # ... with exactly one queued protect job, operation log and unit of quota each:
    # the losers of every race rolled back completely
    assert queued == len(expected)
    assert op_logs == len(expected)
    assert quota_in_use == len(expected)
    assert {s.last_occurrence for s in states} == {OCCURRENCES[-1]}

    # -- a report of who did what, and how late occurrences fired (occurrence to checkpoint)
    recorded = {n: _stats(tmp_path / f"engine{n}.stats") for n in range(ENGINES)}
    lags.sort()
    print(f"\nsetup {setup_seconds:.1f}s; engines recorded {recorded} "
          f"(engine{victim} SIGKILLed at simulated {killed_sim:%H:%M:%S} after reporting "
          f"{before_kill}, when {fired_at_kill}/{len(ops)} of the {halfway:%H:%M} occurrences "
          f"were recorded); all {len(expected)} done by simulated {finished_sim:%H:%M:%S}; "
          f"firing lag in simulated s (/{SPEED:.0f} for real s): p50 "
          f"{statistics.median(lags):.1f} p99 {lags[int(len(lags) * 0.99) - 1]:.1f} "
          f"max {lags[-1]:.1f}")
    assert sum(recorded[n] for n in range(ENGINES) if n != victim) > 0
    assert sum(recorded.values()) <= len(expected)
    assert lags[0] >= -1  # never before the occurrence (1 s of clock skew allowed)


# ---------------------------------------------------------------------------------------
# a stale engine after another engine's catch-up and log pruning


def _one_operation(app, start: dt.datetime, window: int) -> tuple[str, str]:
    api = Api(app, uuid.uuid4().hex)
    status, body = api.post("plans", {"plan": {
        "name": "plan", "provider_id": NOOP,
        "resources": [{"id": api.project, "type": "OS::Keystone::Project", "name": "p"}]}})
    assert status == 200, body
    plan = body["plan"]["id"]
    status, body = api.post("triggers", {"trigger_info": {
        "name": "every minute", "type": "time", "properties": {
            "format": "calendar", "pattern": EVERY_MINUTE, "start_time": start.strftime(FMT),
            "window": window}}})
    assert status == 200, body
    status, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "protect", "operation_type": "protect",
        "trigger_id": body["trigger_info"]["id"],
        "operation_definition": {"plan_id": plan, "provider_id": NOOP}}})
    assert status == 200, body
    op = body["scheduled_operation"]["id"]
    with session_scope(write=True) as session:
        session.execute(update(models.ScheduledOperation)
                        .where(models.ScheduledOperation.id == op)
                        .values(created_at=start - dt.timedelta(minutes=1)))
    return op, plan


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgresql_server").create_database()
    return f"sqlite:///{tmp_path / 'karbor.sqlite'}"


def test_stale_engine_does_not_refire_occurrences_whose_logs_were_pruned(
        database_url, in_process_karbor):
    """Engine A reads the due operations; engine B meanwhile fires and prunes them.

    After a downtime, B catches up 12 missed occurrences (all inside the one-day window,
    so all run) and keeps only the newest 5 logs (``retained_operation_log_number``).
    A, still holding the state it read before B started, must not fire the 7 occurrences
    whose logs B pruned: their unique key is gone, so only the operation's recorded
    progress (``last_occurrence``) can tell A that they were done.
    """
    app = in_process_karbor(database_url)
    CONF.set_override("retained_operation_log_number", 5)
    try:
        start = dt.datetime(2030, 1, 1)
        op, plan = _one_operation(app, start, window=86400)
        now = start + dt.timedelta(minutes=11, seconds=30)
        read, b_done = threading.Event(), threading.Event()

        class SlowEngine(OperationEngine):
            def _handle(self, *args, **kwargs):
                read.set()            # the due operations and their state are read ...
                assert b_done.wait(30)  # ... and engine B runs before A goes on
                return super()._handle(*args, **kwargs)

        a = SlowEngine()
        a_result: list[int] = []
        thread = threading.Thread(target=lambda: a_result.append(a.scan(now)))
        thread.start()
        assert read.wait(30)
        assert OperationEngine().scan(now) == 12
        b_done.set()
        thread.join(60)
        assert a_result == [0], "the stale engine fired occurrences a second time"
        with session_scope() as session:
            made = session.scalars(select(models.Checkpoint.extra_info).where(
                models.Checkpoint.plan_id == plan)).all()
            logs = session.scalars(select(models.ScheduledOperationLog.expect_start_time)
                                   .where(models.ScheduledOperationLog.operation_id == op)
                                   .order_by(models.ScheduledOperationLog.expect_start_time)
                                   ).all()
        occurrences = sorted(json.loads(extra)["occurrence"] for extra in made)
        assert occurrences == [(start + dt.timedelta(minutes=k)).strftime(FMT)
                               for k in range(12)]
        assert logs == [start + dt.timedelta(minutes=k) for k in range(7, 12)]
    finally:
        CONF.clear_override("retained_operation_log_number")
