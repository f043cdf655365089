"""Jobboard dispatch against a real redis-server: what the API posts, what a worker claims,
and how the table and the board are reconciled.  The database is the unit tier's SQLite."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from karbor.common import constants
from karbor.common.config import CONF
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.services.protection import dispatch, jobboard, queue
from tests.integration.redis_server import RedisError, RedisServer
from tests.unit.apiclient import Api

LEASE = 30


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RedisError as exc:
        pytest.fail(f"cannot run redis-server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def board(unit_app, redis):
    CONF.set_override("backend_url", redis.url, group="coordination")
    jobboard.reset_shared()
    redis.client().flushall()
    b = jobboard.Board(redis.url)
    yield b
    b.close()
    jobboard.reset_shared()
    CONF.clear_override("backend_url", group="coordination")


class FakeWorker:
    """What the feeder needs from a worker: slots, and somewhere to start operations."""

    def __init__(self, board, slots: int = 1, worker_id: str | None = None):
        self.worker_id = worker_id or f"test:{uuid.uuid4().hex[:6]}"
        self.slots = slots
        self.started: list[tuple[str, object]] = []
        self.feeder = dispatch.JobboardFeeder(board, self.worker_id, lambda: self.slots,
                                              self._start, lambda: LEASE)

    def _start(self, op, job):
        self.slots -= 1
        self.started.append((op.id, job))


def _protect(app) -> tuple[str, str]:
    """A checkpoint through the real API; its operation's id."""
    project = uuid.uuid4().hex
    api = Api(app, project)
    plan = api.plan()["id"]
    status, body = api.post(f"providers/{constants.NOOP_PROVIDER_ID}/checkpoints",
                            {"checkpoint": {"plan_id": plan}})
    assert status == 202 or status == 200, body
    cp = body["checkpoint"]["id"]
    with session_scope() as session:
        op_id = session.scalar(select(models.Operation.id).where(
            models.Operation.checkpoint_id == cp))
    return cp, op_id


def _job_ops(board, only_unclaimed=False):
    return [jobboard.operation_id_of(j) for j in board.jobs(only_unclaimed=only_unclaimed)]


def _op(op_id) -> models.Operation:
    with session_scope() as session:
        return session.get(models.Operation, op_id)


def test_board_conf_reads_the_url_like_redis_cli():
    conf = jobboard.board_conf("redis://:s3cret@10.0.0.5:6380/2?socket_timeout=9")
    assert (conf["host"], conf["port"], conf["db"], conf["password"]) == \
        ("10.0.0.5", 6380, 2, "s3cret")
    assert conf["socket_timeout"] == "9"
    assert jobboard.board_conf("rediss://cache.example")["ssl"] is True
    with pytest.raises(ValueError):
        jobboard.board_conf("zookeeper://127.0.0.1:2181")
    with pytest.raises(ValueError):
        jobboard.board_conf("redis://127.0.0.1/zero")


def test_the_api_posts_one_job_per_committed_operation(unit_app, board):
    _, op_id = _protect(unit_app)
    assert _job_ops(board) == [op_id]


def test_a_rejected_request_posts_nothing(unit_app, board):
    api = Api(unit_app, uuid.uuid4().hex)
    status, _ = api.post(f"providers/{constants.NOOP_PROVIDER_ID}/checkpoints",
                         {"checkpoint": {"plan_id": str(uuid.uuid4())}})
    assert status == 404
    assert _job_ops(board) == []


def test_a_job_is_run_by_exactly_one_worker_and_consumed_when_done(unit_app, board):
    _, op_id = _protect(unit_app)
    one, two = FakeWorker(board), FakeWorker(board)
    assert one.feeder.claim_next() is True
    assert two.feeder.claim_next() is False
    assert [o for o, _ in one.started] == [op_id] and two.started == []
    op = _op(op_id)
    assert (op.status, op.claimed_by) == (constants.JOB_RUNNING, one.worker_id)
    assert _job_ops(board, only_unclaimed=True) == []
    with session_scope(write=True) as session:
        queue.finish(session, op_id, one.worker_id, None)
    board.consume(one.started[0][1], one.worker_id)
    assert _job_ops(board) == []


def test_a_full_worker_claims_nothing(unit_app, board):
    _, op_id = _protect(unit_app)
    full = FakeWorker(board, slots=0)
    assert full.feeder.claim_next() is False
    assert _job_ops(board, only_unclaimed=True) == [op_id]
    assert _op(op_id).status == constants.JOB_PENDING


def test_a_job_for_a_finished_operation_is_consumed_without_running(unit_app, board):
    _, op_id = _protect(unit_app)
    with session_scope(write=True) as session:
        session.execute(update(models.Operation).where(models.Operation.id == op_id)
                        .values(status=constants.JOB_DONE))
    worker = FakeWorker(board)
    assert worker.feeder.claim_next() is False
    assert worker.started == [] and _job_ops(board) == []


def test_a_job_whose_operation_another_worker_holds_is_given_back(unit_app, board):
    _, op_id = _protect(unit_app)
    with session_scope(write=True) as session:
        assert queue.claim_operation(session, op_id, "elsewhere:1:x", LEASE).state == "claimed"
    worker = FakeWorker(board)
    assert worker.feeder.claim_next() is False
    assert worker.started == []
    # Still on the board, unclaimed, for whoever finds the lease lapsed.
    assert _job_ops(board, only_unclaimed=True) == [op_id]
    # The other worker died: its lease lapses, and the job is taken over.
    with session_scope(write=True) as session:
        session.execute(update(models.Operation).where(models.Operation.id == op_id)
                        .values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    worker.feeder._not_before.clear()
    assert worker.feeder.claim_next() is True
    op = _op(op_id)
    assert (op.claimed_by, op.attempts) == (worker.worker_id, 2)


def test_reconciliation_posts_operations_redis_lost(unit_app, board, redis):
    _, op_id = _protect(unit_app)
    redis.client().flushall()  # Redis lost the job after the API posted it
    worker = FakeWorker(board)
    assert worker.feeder.claim_next() is False
    # Too young: the API may still be posting it.
    assert op_id not in _job_ops(board)
    worker.feeder.reconcile()
    assert op_id not in _job_ops(board)
    with session_scope(write=True) as session:
        session.execute(update(models.Operation).where(models.Operation.id == op_id)
                        .values(created_at=utcnow() - dt.timedelta(minutes=1)))
    assert worker.feeder.reconcile() >= 1
    assert _job_ops(board).count(op_id) == 1
    worker.feeder.reconcile()  # a job exists now: not posted twice
    assert _job_ops(board).count(op_id) == 1
    # Other modules' leftovers may be older; take jobs until ours runs.
    while worker.feeder.claim_next() and op_id not in [o for o, _ in worker.started]:
        worker.slots = 1
    assert op_id in [o for o, _ in worker.started]


def test_without_redis_the_api_still_accepts_and_workers_poll_the_table(unit_app, board,
                                                                          redis):
    redis.stop()
    try:
        _, op_id = _protect(unit_app)  # the post fails; the request does not
        worker = FakeWorker(board, slots=1000)
        started = worker.feeder.claim_next()
        while started and op_id not in [o for o, _ in worker.started]:
            started = worker.feeder.claim_next()
        assert (op_id, None) in worker.started
        assert _op(op_id).claimed_by == worker.worker_id
    finally:
        redis.start()
