"""Multi-node: karbor-api, two karbor-protection workers and the operation engine on one
PostgreSQL database and a shared bank. Operations spread over the workers; a worker
SIGKILLed mid-protect or mid-restore is taken over by the other one."""

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

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SLOW = "4c1d7a6e-52a3-4f0e-9c57-0f6f3d1f9a01"
LEASE = 6


class Cluster:
    def __init__(self, tmp: Path, db_url: str):
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
            "bank = karbor-fs-bank-plugin\nenabled = True\n"
            f"[file_system_bank_plugin]\nfile_system_bank_path = {tmp / 'shared-bank'}\n")
        self.config = tmp / "karbor.conf"
        self.config.write_text(
            f"[DEFAULT]\nstate_path = {tmp / 'state'}\nosapi_karbor_listen = 127.0.0.1\n"
            f"osapi_karbor_listen_port = {self.port}\nprovider_config_dir = {providers}\n"
            f"operation_claim_timeout = {LEASE}\nmax_concurrent_operations = 1\n"
            "operation_poll_interval = 0.1\n"
            f"[database]\nconnection = {db_url}\n")

    def start(self, name: str, binary: str) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        log = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen([str(BIN / binary), "--config-file", str(self.config)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def cluster(tmp_path, postgresql_server):
    c = Cluster(tmp_path, postgresql_server.create_database(f"mn{uuid.uuid4().hex[:8]}"))
    # The schema first, once, so the services do not race to create it.
    subprocess.run([str(BIN / "karbor-manage"), "--config-file", str(c.config), "db", "sync"],
                   check=True, capture_output=True, timeout=120)
    c.start("api", "karbor-api")
    _wait_ready(c.url, c.procs["api"], 60, tmp_path / "api.log")
    c.start("worker1", "karbor-protection")
    c.start("worker2", "karbor-protection")
    c.start("engine", "karbor-operationengine")
    yield c
    c.stop()


def _claimed_by(db_url: str, record_column: str, record_id: str) -> str | None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(
                f"SELECT claimed_by FROM operations WHERE {record_column} = :i "
                "ORDER BY created_at DESC LIMIT 1"), {"i": record_id}).scalar()
    finally:
        engine.dispose()


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


def test_operations_spread_and_survive_a_killed_worker(cluster):
    project = uuid.uuid4().hex
    headers = {"X-Auth-Token": f"demo:{project}"}
    base = f"{cluster.url}/v1/{project}"
    server = str(uuid.uuid4())

    def post(path, body):
        resp = requests.post(f"{base}/{path}", json=body, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def status(path):
        return next(iter(requests.get(f"{base}/{path}", headers=headers,
                                      timeout=30).json().values()))["status"]

    # Work spreads: four one-second protects keep both single-slot workers busy.
    quick = post("plans", {"plan": {"name": "quick", "provider_id": SLOW, "resources": [
        {"id": project, "type": "OS::Keystone::Project", "name": "p"}],
        "parameters": {"OS::Keystone::Project": {"sleep": "1"}}}})["plan"]["id"]
    quick_cps = [post(f"providers/{SLOW}/checkpoints", {"checkpoint": {"plan_id": quick}})
                 ["checkpoint"]["id"] for _ in range(4)]
    _wait(lambda: all(status(f"providers/{SLOW}/checkpoints/{c}") == "available"
                      for c in quick_cps))
    workers = {_worker_of(cluster, _claimed_by(cluster.db_url, "checkpoint_id", c))
               for c in quick_cps}
    assert workers == {"worker1", "worker2"}

    # SIGKILL the worker running a protect: the other one finishes it.
    slow = post("plans", {"plan": {"name": "slow", "provider_id": SLOW, "resources": [
        {"id": server, "type": "OS::Nova::Server", "name": "s"}],
        "parameters": {"OS::Nova::Server": {"sleep": "4"}}}})["plan"]["id"]
    cp = post(f"providers/{SLOW}/checkpoints", {"checkpoint": {"plan_id": slow}})[
        "checkpoint"]["id"]
    owner = _worker_of(cluster, _wait(lambda: _claimed_by(cluster.db_url, "checkpoint_id", cp)))
    time.sleep(1)
    cluster.procs[owner].send_signal(signal.SIGKILL)
    cluster.procs[owner].wait(10)
    assert _wait(lambda: status(f"providers/{SLOW}/checkpoints/{cp}")
                 in ("available", "error")) and \
        status(f"providers/{SLOW}/checkpoints/{cp}") == "available"
    survivor = _worker_of(cluster, _claimed_by(cluster.db_url, "checkpoint_id", cp))
    assert survivor != owner

    # Restart the dead worker; then SIGKILL whoever runs a slow restore.
    cluster.start(owner, "karbor-protection")
    restore = post("restores", {"restore": {
        "provider_id": SLOW, "checkpoint_id": cp,
        "parameters": {"OS::Nova::Server": {"sleep": "4"}}}})["restore"]["id"]
    runner = _worker_of(cluster, _wait(lambda: _claimed_by(cluster.db_url, "restore_id",
                                                           restore)))
    time.sleep(1)
    cluster.procs[runner].send_signal(signal.SIGKILL)
    cluster.procs[runner].wait(10)
    _wait(lambda: status(f"restores/{restore}") in ("success", "fail"))
    assert status(f"restores/{restore}") == "success"
    assert _worker_of(cluster, _claimed_by(cluster.db_url, "restore_id", restore)) != runner

    # Nothing left in a transient status.
    listed = requests.get(f"{base}/providers/{SLOW}/checkpoints", headers=headers,
                          timeout=30).json()["checkpoints"]
    assert {c["status"] for c in listed} == {"available"}
