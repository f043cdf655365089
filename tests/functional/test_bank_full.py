"""A protect into a full bank (a 2 MiB tmpfs) fails saying the bank is full, in the
operation log and on the checkpoint, and so does the next one: never "write session closed
with uncommitted data". Needs mount(2) (root); tests/unit/test_bank_full.py covers the same
path without it."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.functional._server import karbor_server
from tests.functional.test_local_directory import (  # noqa: F401 - local_env is a fixture
    LOCAL_PROVIDER,
    TYPE,
    Client,
    local_env,
)

FULL = "is full: no space left on device"


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m"):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); "
                    "tests/unit/test_bank_full.py covers the error path")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_protect_into_a_full_bank_says_the_bank_is_full(local_env):  # noqa: F811
    tmp, providers, roots = local_env
    source = roots / "big"
    source.mkdir()
    with open("/dev/urandom", "rb") as rnd:
        for i in range(3):
            (source / f"part{i}.bin").write_bytes(rnd.read(2 * 1024 * 1024))
    project = uuid.uuid4().hex
    with small_tmpfs(tmp / "bank"), \
            karbor_server({"DEFAULT": {"provider_config_dir": providers},
                           "local_directory": {"roots": roots}}) as srv:
        api = Client(srv.url, project)
        resource = api.call("GET", f"protectables/{TYPE}/instances")["instances"][0]
        plan = api.call("POST", "plans", {"plan": {
            "name": "big", "provider_id": LOCAL_PROVIDER,
            "resources": [{"id": resource["id"], "type": TYPE, "name": resource["name"],
                           "extra_info": resource.get("extra_info") or {}}]}})["plan"]
        for _attempt in range(2):   # the first fills the bank, the second finds it full
            cp_id = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                             {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
            assert api.checkpoint(cp_id)["status"] == "error"
            logs = api.call("GET", "operation_logs")["operation_logs"]
            log = next(entry for entry in logs if entry["checkpoint_id"] == cp_id)
            error = log["error_info"] or ""
            assert FULL in error, error
            assert "uncommitted" not in error, error
            with sqlite3.connect(srv.db_path) as db:
                (reason,) = db.execute("SELECT status_reason FROM checkpoints WHERE id = ?",
                                       (cp_id,)).fetchone()
            assert FULL in reason, reason
