"""A lost index file never costs a checkpoint its data (issue 17, item 1).

The adversarial run: protect g1 (cp1) and g2 (cp2), move away the index file that cp1's
protect wrote under ``chunks/index/``, delete cp2. The collector used to take cp1's packs for
a crashed writer's orphans and delete them; cp1 could never be restored again. Now it rebuilds
the index from the packs' own headers, and cp1 restores byte for byte.
"""

from __future__ import annotations

import os
import shutil
import uuid

from tests.functional._server import karbor_server
from tests.functional.test_local_directory import (  # noqa: F401  (local_env is a fixture)
    LOCAL_PROVIDER,
    TYPE,
    Client,
    _make_tree,
    _snapshot,
    local_env,
)


def _index_files(bank) -> set[str]:
    found = set()
    for d, _, files in os.walk(bank):
        if os.path.basename(d) == "index" or "/index" in d:
            found |= {os.path.join(d, f) for f in files}
    return found


def _packs(bank) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(bank) if "/packs" in d
            for f in files}


def test_delete_after_index_loss_keeps_the_other_checkpoint_restorable(local_env):  # noqa: F811
    tmp, providers, roots = local_env
    g1, g2 = roots / "g1", roots / "g2"
    g1.mkdir()
    g2.mkdir()
    _make_tree(g1)
    (g2 / "other.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    expected = _snapshot(g1)
    bank = tmp / "bank"
    project = uuid.uuid4().hex
    with karbor_server({"DEFAULT": {"provider_config_dir": providers},
                        "local_directory": {"roots": roots}}) as srv:
        api = Client(srv.url, project)
        instances = {i["name"]: i for i in
                     api.call("GET", f"protectables/{TYPE}/instances")["instances"]}

        def protect(path) -> str:
            res = instances[str(path)]
            plan = api.call("POST", "plans", {"plan": {
                "name": path.name, "provider_id": LOCAL_PROVIDER,
                "resources": [{"id": res["id"], "type": TYPE, "name": res["name"],
                               "extra_info": res.get("extra_info") or {}}]}})["plan"]
            cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                          {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
            assert api.checkpoint(cp)["status"] == "available", srv.log()[-2000:]
            return cp

        cp1 = protect(g1)
        cp1_index, only_cp1 = _index_files(bank), _packs(bank)
        assert cp1_index, "cp1's protect wrote no index file"
        cp2 = protect(g2)
        both = _packs(bank)
        aside = tmp / "aside"
        aside.mkdir()
        for f in cp1_index:
            shutil.move(f, aside / os.path.basename(f))

        api.call("DELETE", f"providers/{LOCAL_PROVIDER}/checkpoints/{cp2}")
        assert api.checkpoint(cp2)["status"] == "deleted"

        shutil.rmtree(g1)
        target = roots / "restored"
        done = api.restore(cp1, {"restore_path": str(target)})
        assert done["status"] == "success", (done, srv.log()[-3000:])
        assert _snapshot(target) == expected
        assert api.verify(cp1)["status"] == "success"
        # cp2's packs went, every one of cp1's stayed.
        assert only_cp1 <= _packs(bank) < both
        assert "rebuilt from" in srv.log()
