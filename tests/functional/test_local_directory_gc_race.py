"""Deleting a checkpoint while another protect of the same data runs loses nothing.

The delete collects the chunk store while the second protect is still writing chunks that
the deleted checkpoint shared with it; afterwards the second checkpoint must verify and
restore byte for byte, and deleting it too must bring the bank back to (near) empty.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid

from tests.functional._server import karbor_server
from tests.functional.test_local_directory import (  # noqa: F401  (local_env is a fixture)
    LOCAL_PROVIDER,
    TYPE,
    Client,
    _chunk_bytes,
    _snapshot,
    local_env,
)

MiB = 1024 * 1024
PARTS = 16


def _fill(top, seed: int) -> None:
    """Enough data that the protect is still writing when the delete runs (~2 s or more)."""
    rnd = __import__("random").Random(seed)
    (top / "big").mkdir(parents=True, exist_ok=True)
    for i in range(PARTS):
        (top / "big" / f"part-{i:02d}.bin").write_bytes(rnd.randbytes(24 * MiB))
    for i in range(200):
        (top / f"note-{i:03d}.txt").write_text(f"note {i}\n" * (i + 1))


def test_delete_racing_a_protect_loses_nothing(local_env):  # noqa: F811
    tmp, providers, roots = local_env
    source = roots / "data"
    source.mkdir()
    _fill(source, seed=1)
    project = uuid.uuid4().hex
    with karbor_server({"DEFAULT": {"provider_config_dir": providers},
                        "local_directory": {"roots": roots}}) as srv:
        api = Client(srv.url, project)
        resource = api.call("GET", f"protectables/{TYPE}/instances")["instances"][0]
        plan = api.call("POST", "plans", {"plan": {
            "name": "race", "provider_id": LOCAL_PROVIDER,
            "resources": [{"id": resource["id"], "type": TYPE, "name": resource["name"],
                           "extra_info": resource.get("extra_info") or {}}]}})["plan"]

        def protect() -> str:
            return api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                            {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]

        first = protect()
        assert api.checkpoint(first)["status"] == "available"

        # Change a quarter of the files, so the second checkpoint shares most chunks with
        # the first and also writes new ones while the first is being deleted; touch the
        # others, so that it reads them again (no files cache hit) and finds their chunks
        # in the store: those are the chunks a careless collection would take away.
        for i in range(PARTS):
            path = source / "big" / f"part-{i:02d}.bin"
            if i % 4 == 0:
                path.write_bytes(os.urandom(24 * MiB))
            else:
                os.utime(path)
        expected = _snapshot(source)

        second = protect()
        deadline = time.monotonic() + 60
        while api.call("GET", f"providers/{LOCAL_PROVIDER}/checkpoints/{second}"
                       )["checkpoint"]["status"] != "protecting":
            assert time.monotonic() < deadline, "the second protect never started"
            time.sleep(0.02)
        api.call("DELETE", f"providers/{LOCAL_PROVIDER}/checkpoints/{first}")
        assert api.checkpoint(first)["status"] == "deleted"
        # The delete really raced: it finished while the second protect was still writing.
        status_when_deleted = api.call(
            "GET", f"providers/{LOCAL_PROVIDER}/checkpoints/{second}")["checkpoint"]["status"]
        assert status_when_deleted == "protecting", (
            "the protect finished before the delete; the test did not race "
            f"(status {status_when_deleted})")

        cp = api.checkpoint(second)
        assert cp["status"] == "available", (cp, srv.log()[-3000:])
        assert api.verify(second)["status"] == "success"

        shutil.rmtree(source)
        target = roots / "restored"
        done = api.restore(second, {"restore_path": str(target)})
        assert done["status"] == "success", done
        assert _snapshot(target) == expected

        # Deleting the last checkpoint reclaims everything, including what the delete
        # above had to leave to a later collection.
        api.call("DELETE", f"providers/{LOCAL_PROVIDER}/checkpoints/{second}")
        assert api.checkpoint(second)["status"] == "deleted"
        assert _chunk_bytes(tmp / "bank") < 64 * 1024
