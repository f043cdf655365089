"""The operation engine with an injected clock: each occurrence exactly once, windows, retention."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import pytest
from sqlalchemy import func, select, update

from karbor.common import constants
from karbor.db import models
from karbor.db.session import session_scope
from karbor.services.operationengine.engine import OperationEngine
from tests.unit.apiclient import Api

NOOP = constants.NOOP_PROVIDER_ID
EVERY_5_MIN = "BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=5;\\nEND:VEVENT"


def _setup(app, operation_type="protect", window=None, **definition):
    project = uuid.uuid4().hex
    api = Api(app, project)
    status, body = api.post("plans", {"plan": {
        "name": "p", "provider_id": NOOP,
        "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "proj"}]}})
    assert status == 200, body
    plan = body["plan"]["id"]
    props = {"pattern": EVERY_5_MIN, "format": "calendar", "start_time": "2030-01-01 00:00:00"}
    if window:
        props["window"] = window
    status, body = api.post("triggers", {"trigger_info": {"name": "t", "type": "time",
                                                          "properties": props}})
    assert status == 200, body
    trigger = body["trigger_info"]["id"]
    status, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "s", "operation_type": operation_type, "trigger_id": trigger,
        "operation_definition": {"plan_id": plan, "provider_id": NOOP, **definition}}})
    assert status == 200, body
    op_id = body["scheduled_operation"]["id"]
    # The operation was "created" just before the trigger starts.
    with session_scope(write=True) as session:
        session.execute(update(models.ScheduledOperation).where(
            models.ScheduledOperation.id == op_id).values(created_at=dt.datetime(2030, 1, 1)))
    return api, plan, op_id


def _checkpoints(plan):
    with session_scope() as session:
        return session.scalars(select(models.Checkpoint).where(
            models.Checkpoint.plan_id == plan).order_by(models.Checkpoint.created_at)).all()


def _logs(op_id):
    with session_scope() as session:
        return session.scalars(select(models.ScheduledOperationLog).where(
            models.ScheduledOperationLog.operation_id == op_id)
            .order_by(models.ScheduledOperationLog.expect_start_time)).all()


def at(minute, second=0):
    return dt.datetime(2030, 1, 1, 0, 0) + dt.timedelta(minutes=minute, seconds=second)


def test_each_occurrence_fires_once_with_engine_marker(app):
    _, plan, op_id = _setup(app)
    engine = OperationEngine()
    engine.scan(at(4, 59))
    assert _logs(op_id) == []
    engine.scan(at(5, 1))
    engine.scan(at(5, 30))          # same occurrence: nothing more
    assert len(_logs(op_id)) == 1
    engine.scan(at(10, 2))
    cps = _checkpoints(plan)
    assert len(cps) == 2
    assert all(json.loads(c.extra_info)["created_by"] == "operation-engine" for c in cps)
    assert [log.expect_start_time for log in _logs(op_id)] == [at(5), at(10)]
    assert {log.state for log in _logs(op_id)} == {"success"}
    with session_scope() as session:
        oplogs = session.scalars(select(models.OperationLog).where(
            models.OperationLog.plan_id == plan)).all()
    assert {o.scheduled_operation_id for o in oplogs} == {op_id}


def test_concurrent_engines_never_fire_an_occurrence_twice(app):
    _, plan, op_id = _setup(app)
    engines = [OperationEngine() for _ in range(4)]
    for rounds, minute in enumerate((5, 10, 15, 20), start=1):
        barrier = threading.Barrier(len(engines))

        def scan(engine, now=at(minute, 3), barrier=barrier):
            barrier.wait()
            engine.scan(now)

        threads = [threading.Thread(target=scan, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(_logs(op_id)) == rounds
    assert len(_checkpoints(plan)) == 4
    with session_scope() as session:
        dupes = session.execute(
            select(models.ScheduledOperationLog.expect_start_time, func.count())
            .where(models.ScheduledOperationLog.operation_id == op_id)
            .group_by(models.ScheduledOperationLog.expect_start_time)).all()
    assert sorted(n for _, n in dupes) == [1, 1, 1, 1]


def test_after_downtime_in_window_runs_once_and_older_are_skipped(app):
    _, plan, op_id = _setup(app, window=120)
    engine = OperationEngine()
    # Down from 00:00 to 00:21: occurrences 5, 10, 15 are past their 2-minute window,
    # 20 is still inside it.
    engine.scan(at(21))
    logs = _logs(op_id)
    assert [(log.expect_start_time, log.state) for log in logs] == [
        (at(5), "dropped_out_of_window"), (at(10), "dropped_out_of_window"),
        (at(15), "dropped_out_of_window"), (at(20), "success")]
    assert len(_checkpoints(plan)) == 1


def test_retention_keeps_the_newest(app):
    _, plan, op_id = _setup(app, "retention_protect", max_backups="3")
    engine = OperationEngine()
    for minute in range(5, 35, 5):
        engine.scan(at(minute, 1))
        # The protection worker is not running here: finish the protects by hand.
        with session_scope(write=True) as session:
            session.execute(update(models.Checkpoint).where(
                models.Checkpoint.plan_id == plan,
                models.Checkpoint.status == constants.CHECKPOINT_STATUS_PROTECTING)
                .values(status=constants.CHECKPOINT_STATUS_AVAILABLE))
    cps = _checkpoints(plan)
    assert len(cps) == 6
    kept = [c for c in cps if c.status == constants.CHECKPOINT_STATUS_AVAILABLE]
    assert [c.id for c in kept] == [c.id for c in cps[-3:]]
    assert all(c.status == constants.CHECKPOINT_STATUS_DELETING for c in cps[:3])


def test_deleted_plan_records_a_failed_occurrence(app):
    api, plan, op_id = _setup(app)
    with session_scope(write=True) as session:
        session.execute(update(models.Plan).where(models.Plan.id == plan).values(deleted=True))
    OperationEngine().scan(at(5, 1))
    [log] = _logs(op_id)
    assert log.state == "failed"
    assert plan in json.loads(log.extend_info)["error"]
    assert _checkpoints(plan) == []


@pytest.fixture
def app(unit_app):
    return unit_app


def test_disabled_operation_fires_nothing_and_resumes_after_enabling(app):
    api, plan, op_id = _setup(app)
    engine = OperationEngine()
    engine.scan(at(5, 1))
    status, body = api.put(f"scheduled_operations/{op_id}",
                           {"scheduled_operation": {"enabled": False}})
    assert status == 200, body
    engine.scan(at(10, 1))
    engine.scan(at(15, 1))
    assert [log.expect_start_time for log in _logs(op_id)] == [at(5)]
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    assert api.put(f"scheduled_operations/{op_id}",
                   {"scheduled_operation": {"enabled": True}})[0] == 200
    with session_scope(write=True) as session:
        state = session.scalar(select(models.ScheduledOperationState).where(
            models.ScheduledOperationState.operation_id == op_id))
        # Enabling stamps the wall clock as the last occurrence handled...
        assert state.next_run_at is None and state.last_occurrence >= before
        # ...here, on the test's clock, that moment is 00:16.
        state.last_occurrence = at(16)
    # The next occurrence runs; the ones missed while disabled are not replayed.
    engine.scan(at(20, 1))
    assert [log.expect_start_time for log in _logs(op_id)] == [at(5), at(20)]
    assert len(_checkpoints(plan)) == 2
