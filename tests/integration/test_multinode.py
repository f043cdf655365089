"""Multi-node: karbor-api, two karbor-protection workers and the operation engine on one
PostgreSQL database and a shared bank, with the workers fed either by polling the database
or by a TaskFlow jobboard on a real Redis.  Operations spread over the workers; a worker
SIGKILLed mid-protect or mid-restore is taken over by the other one; a job Redis lost (or
never received) is still run.

The database-polling cluster shares a file-system bank on one directory; the jobboard
cluster shares an S3 bank on a real Swift (s3api), as a multi-node deployment would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.functional._server import _wait_ready, free_port
from tests.integration.redis_server import RedisError, RedisServer

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SLOW = "4c1d7a6e-52a3-4f0e-9c57-0f6f3d1f9a01"
LEASE = 6


class Cluster:
    def __init__(self, tmp: Path, db_url: str, coordination: str = "", bank: str = ""):
        self.tmp = tmp
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        providers = tmp / "providers.d"
        providers.mkdir()
        (providers / "slow.conf").write_text(
            f"[provider]\nname = Slow\nid = {SLOW}\n"
            "plugin = tests.functional.plugins.slow:SlowProtectionPlugin\n"
            + (bank or "bank = karbor-fs-bank-plugin\nenabled = True\n"
               f"[file_system_bank_plugin]\nfile_system_bank_path = {tmp / 'shared-bank'}\n"))
        self.config = tmp / "karbor.conf"
        self.config.write_text(
            f"[DEFAULT]\nstate_path = {tmp / 'state'}\nosapi_karbor_listen = 127.0.0.1\n"
            f"osapi_karbor_listen_port = {self.port}\nprovider_config_dir = {providers}\n"
            f"operation_claim_timeout = {LEASE}\nmax_concurrent_operations = 1\n"
            "operation_poll_interval = 0.1\n"
            f"[database]\nconnection = {db_url}\n"
            f"[coordination]\n{coordination}")

    def start(self, name: str, binary: str) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log = open(self.tmp / f"{name}.log", "ab")
        proc = subprocess.Popen([str(BIN / binary), "--config-file", str(self.config)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        self.start("api", "karbor-api")
        _wait_ready(self.url, self.procs["api"], 60, self.tmp / "api.log")

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


class Client:
    """The REST calls the tests make, as one project."""

    def __init__(self, cluster: Cluster):
        self.project = uuid.uuid4().hex
        self.headers = {"X-Auth-Token": f"demo:{self.project}"}
        self.base = f"{cluster.url}/v1/{self.project}"

    def post(self, path: str, body: dict) -> dict:
        resp = requests.post(f"{self.base}/{path}", json=body, headers=self.headers,
                             timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def status(self, path: str) -> str:
        return next(iter(requests.get(f"{self.base}/{path}", headers=self.headers,
                                      timeout=30).json().values()))["status"]

    def plan(self, name: str, resource_type: str, resource_id: str, sleep: float) -> str:
        return self.post("plans", {"plan": {
            "name": name, "provider_id": SLOW,
            "resources": [{"id": resource_id, "type": resource_type, "name": name}],
            "parameters": {resource_type: {"sleep": str(sleep)}}}})["plan"]["id"]

    def protect(self, plan: str) -> str:
        return self.post(f"providers/{SLOW}/checkpoints",
                         {"checkpoint": {"plan_id": plan}})["checkpoint"]["id"]

    def checkpoint_status(self, cp: str) -> str:
        return self.status(f"providers/{SLOW}/checkpoints/{cp}")

    def checkpoint_statuses(self) -> set[str]:
        listed = requests.get(f"{self.base}/providers/{SLOW}/checkpoints",
                              headers=self.headers, timeout=30).json()["checkpoints"]
        return {c["status"] for c in listed}


def _sync_schema(c: Cluster) -> None:
    # The schema first, once, so the services do not race to create it.
    subprocess.run([str(BIN / "karbor-manage"), "--config-file", str(c.config), "db", "sync"],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture
def cluster(tmp_path, postgresql_server):
    """Workers fed by polling the database (no ``[coordination] backend_url``)."""
    c = Cluster(tmp_path, postgresql_server.create_database(f"mn{uuid.uuid4().hex[:8]}"))
    _sync_schema(c)
    c.start_api()
    c.start("worker1", "karbor-protection")
    c.start("worker2", "karbor-protection")
    c.start("engine", "karbor-operationengine")
    yield c
    c.stop()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except RedisError as exc:
        pytest.fail(f"cannot run redis-server: {exc}")
    yield server
    server.stop()


def _s3_bank(swift_server) -> str:
    """Provider-file lines of an S3 bank on the session's real Swift (s3api)."""
    bucket = f"mn-{uuid.uuid4().hex[:10]}"
    return ("bank = karbor-s3-bank-plugin\nenabled = True\n"
            f"[s3_client]\ns3_endpoint = {swift_server.endpoint}\n"
            f"s3_access_key = {swift_server.access_key}\n"
            f"s3_secret_key = {swift_server.secret_key}\ns3_region = {swift_server.region}\n"
            f"[s3_bank_plugin]\nbank_s3_object_bucket = {bucket}\n"
            f"bank_s3_lease_bucket = {bucket}-leases\n")


def _jobboard_cluster(tmp_path, postgresql_server, redis_server, reconcile: float,
                      bank: str = "") -> Cluster:
    c = Cluster(tmp_path, postgresql_server.create_database(f"jb{uuid.uuid4().hex[:8]}"),
                f"backend_url = {redis_server.url}\nreconcile_interval = {reconcile}\n",
                bank=bank)
    _sync_schema(c)
    return c


@pytest.fixture
def jobboard_cluster(tmp_path, postgresql_server, redis_server, swift_server):
    """Workers fed by the jobboard, sharing an S3 bank on a real Swift.  The reconciliation
    scan is too rare to matter within the test, so every hand-off and take-over it sees
    went through Redis."""
    c = _jobboard_cluster(tmp_path, postgresql_server, redis_server, reconcile=3600,
                          bank=_s3_bank(swift_server))
    c.start_api()
    c.start("worker1", "karbor-protection")
    c.start("worker2", "karbor-protection")
    c.start("engine", "karbor-operationengine")
    yield c
    c.stop()


def _query(db_url: str, sql: str, **params):
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).all()
    finally:
        engine.dispose()


def _claimed_by(db_url: str, record_column: str, record_id: str) -> str | None:
    rows = _query(db_url, f"SELECT claimed_by FROM operations WHERE {record_column} = :i "
                          "ORDER BY created_at DESC LIMIT 1", i=record_id)
    return rows[0][0] if rows else None


def _worker_of(cluster: Cluster, claimed_by: str) -> str:
    pid = int(claimed_by.split(":")[1])
    return next(name for name, p in cluster.procs.items() if p.pid == pid)


def _wait(fn, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def _jobs(redis_server: RedisServer) -> int:
    """Jobs on the board, claimed or not (TaskFlow keeps them in one hash)."""
    return redis_server.client().hlen("karbor:listings")


def _spread_and_survive_kills(cluster: Cluster) -> None:
    client = Client(cluster)

    # Work spreads: four one-second protects keep both single-slot workers busy.
    quick = client.plan("quick", "OS::Keystone::Project", client.project, 1)
    quick_cps = [client.protect(quick) for _ in range(4)]
    _wait(lambda: all(client.checkpoint_status(c) == "available" for c in quick_cps))
    workers = {_worker_of(cluster, _claimed_by(cluster.db_url, "checkpoint_id", c))
               for c in quick_cps}
    assert workers == {"worker1", "worker2"}

    # SIGKILL the worker running a protect: the other one finishes it.
    slow = client.plan("slow", "OS::Nova::Server", str(uuid.uuid4()), 4)
    cp = client.protect(slow)
    owner = _worker_of(cluster, _wait(lambda: _claimed_by(cluster.db_url, "checkpoint_id", cp)))
    time.sleep(1)
    cluster.kill(owner)
    assert _wait(lambda: client.checkpoint_status(cp) in ("available", "error")) and \
        client.checkpoint_status(cp) == "available"
    survivor = _worker_of(cluster, _claimed_by(cluster.db_url, "checkpoint_id", cp))
    assert survivor != owner

    # Restart the dead worker; then SIGKILL whoever runs a slow restore.
    cluster.start(owner, "karbor-protection")
    restore = client.post("restores", {"restore": {
        "provider_id": SLOW, "checkpoint_id": cp,
        "parameters": {"OS::Nova::Server": {"sleep": "4"}}}})["restore"]["id"]
    runner = _worker_of(cluster, _wait(lambda: _claimed_by(cluster.db_url, "restore_id",
                                                           restore)))
    time.sleep(1)
    cluster.kill(runner)
    _wait(lambda: client.status(f"restores/{restore}") in ("success", "fail"))
    assert client.status(f"restores/{restore}") == "success"
    assert _worker_of(cluster, _claimed_by(cluster.db_url, "restore_id", restore)) != runner

    # Nothing left in a transient status, nothing left to run.
    assert client.checkpoint_statuses() == {"available"}
    assert _query(cluster.db_url, "SELECT id FROM operations "
                                  "WHERE status IN ('pending', 'running')") == []


def test_operations_spread_and_survive_a_killed_worker(cluster):
    _spread_and_survive_kills(cluster)


def test_jobboard_spreads_operations_and_survives_a_killed_worker(jobboard_cluster,
                                                                   redis_server):
    _spread_and_survive_kills(jobboard_cluster)
    # Every job was consumed once its operation was over; none was re-posted.
    _wait(lambda: _jobs(redis_server) == 0, timeout=30)
    for name in ("worker1", "worker2"):
        assert "had no job on the jobboard" not in jobboard_cluster.log(name)


def test_jobboard_operations_redis_lost_are_still_run(tmp_path, postgresql_server,
                                                      redis_server):
    cluster = _jobboard_cluster(tmp_path, postgresql_server, redis_server, reconcile=1)
    try:
        cluster.start_api()
        client = Client(cluster)
        plan = client.plan("lost", "OS::Keystone::Project", client.project, 0)

        # The API posted the job, then Redis lost it (a restart without persistence)
        # before any worker saw it.
        lost = client.protect(plan)
        _wait(lambda: _jobs(redis_server) == 1, timeout=10)
        redis_server.client().flushall()
        cluster.start("worker1", "karbor-protection")
        cluster.start("worker2", "karbor-protection")
        _wait(lambda: client.checkpoint_status(lost) == "available", timeout=60)
        assert any("had no job on the jobboard" in cluster.log(w)
                   for w in ("worker1", "worker2"))

        # Redis is down when the API records an operation: the request still succeeds
        # and the workers run it from the database.
        redis_server.stop()
        unposted = client.protect(plan)
        _wait(lambda: client.checkpoint_status(unposted) == "available", timeout=60)

        # Redis is back (empty): new operations go through it again.
        redis_server.start()
        again = client.protect(plan)
        _wait(lambda: client.checkpoint_status(again) == "available", timeout=60)
        _wait(lambda: _jobs(redis_server) == 0, timeout=30)
        assert client.checkpoint_statuses() == {"available"}
        assert _query(cluster.db_url, "SELECT id FROM operations "
                                      "WHERE status IN ('pending', 'running')") == []
    finally:
        cluster.stop()
