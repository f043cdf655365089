"""Accepted work survives a killed server: SIGKILL mid-protect, restart, the checkpoint completes.

The plan uses the test plugin ``tests.functional.plugins.slow``, loaded from a
provider file by class path, whose main hook sleeps long enough to be killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import requests

from tests.functional._server import EXECUTABLE, _wait_ready, free_port

REPO = Path(__file__).resolve().parents[2]
SLOW_PROVIDER = "4c1d7a6e-52a3-4f0e-9c57-0f6f3d1f9a01"


def _start(tmp: Path, port: int, log_name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = open(tmp / log_name, "wb")
    proc = subprocess.Popen([str(EXECUTABLE), "--config-file", str(tmp / "karbor.conf")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    _wait_ready(f"http://127.0.0.1:{port}", proc, 60, tmp / log_name)
    return proc


def _wait_status(url: str, headers: dict, want: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    body = {}
    while time.monotonic() < deadline:
        body = requests.get(url, headers=headers, timeout=10).json()
        record = next(iter(body.values()))
        if record["status"] in want:
            return record
        time.sleep(0.2)
    raise AssertionError(f"status never reached {want}: {body}")


def test_checkpoint_completes_after_sigkill_and_restart(tmp_path):
    port = free_port()
    providers = tmp_path / "providers.d"
    providers.mkdir()
    (providers / "slow.conf").write_text(
        "[provider]\nname = Slow Provider\n"
        f"id = {SLOW_PROVIDER}\n"
        "plugin = tests.functional.plugins.slow:SlowProtectionPlugin\n"
        "bank = karbor-fs-bank-plugin\nenabled = True\n")
    (tmp_path / "karbor.conf").write_text(
        f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\nosapi_karbor_listen = 127.0.0.1\n"
        f"osapi_karbor_listen_port = {port}\nprovider_config_dir = {providers}\n"
        # A lease far longer than the test: only the restart's own takeover can resume.
        "operation_claim_timeout = 600\n")
    project = uuid.uuid4().hex
    server = str(uuid.uuid4())
    headers = {"X-Auth-Token": f"demo:{project}"}
    base = f"http://127.0.0.1:{port}/v1/{project}"

    proc = _start(tmp_path, port, "first.log")
    try:
        plan = requests.post(f"{base}/plans", headers=headers, timeout=10, json={"plan": {
            "name": "slow", "provider_id": SLOW_PROVIDER,
            "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"},
                          {"id": server, "type": "OS::Nova::Server", "name": "s"}],
            "parameters": {"OS::Nova::Server": {"sleep": "5"}}}}).json()["plan"]
        cp = requests.post(f"{base}/providers/{SLOW_PROVIDER}/checkpoints", headers=headers,
                           timeout=10, json={"checkpoint": {"plan_id": plan["id"]}}
                           ).json()["checkpoint"]
        data = tmp_path / "state" / "bank" / "karbor" / "checkpoints" / cp["id"] / \
            "resource-data"
        deadline = time.monotonic() + 30
        while not (data / server / "status").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (data / server / "status").exists(), "the slow hook never started"
        assert (data / project / "data").exists(), "the fast hook did not finish first"
        time.sleep(1.5)  # progress is saved within a second of a hook finishing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    cp_url = f"{base}/providers/{SLOW_PROVIDER}/checkpoints/{cp['id']}"
    proc = _start(tmp_path, port, "second.log")
    try:
        record = _wait_status(cp_url, headers, {"available", "error"})
        assert record["status"] == "available", record
        listed = requests.get(f"{base}/providers/{SLOW_PROVIDER}/checkpoints",
                              headers=headers, timeout=10).json()["checkpoints"]
        assert [c["id"] for c in listed] == [cp["id"]]
        logs = requests.get(f"{base}/operation_logs", headers=headers, timeout=10).json()
        protect_logs = [log for log in logs["operation_logs"]
                        if log["checkpoint_id"] == cp["id"]]
        assert [log["status"] for log in protect_logs] == ["available"]
        # The resumed attempt skipped the hook that had finished and redid the other.
        assert json.loads((data / project / "runs").read_text()) == 1
        assert json.loads((data / server / "runs").read_text()) == 2
        # The data the resumed hook wrote is really in the bank: restore reads it back.
        restore = requests.post(f"{base}/restores", headers=headers, timeout=10, json={
            "restore": {"provider_id": SLOW_PROVIDER, "checkpoint_id": cp["id"],
                        "parameters": {}}}).json()["restore"]
        done = _wait_status(f"{base}/restores/{restore['id']}", headers, {"success", "fail"})
        assert done["status"] == "success", done
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
