"""A root that belongs to a project is that project's alone, over the real API (issue 17,
item 5): another project neither lists its directories, nor protects them through a plan
naming their ids, nor restores into it."""

from __future__ import annotations

import uuid

from tests.functional._server import karbor_server
from tests.functional.test_local_directory import (  # noqa: F401  (local_env is a fixture)
    LOCAL_PROVIDER,
    TYPE,
    Client,
    local_env,
)

DIRECTORY_NS = uuid.UUID("6a1d3c52-0b7e-5f8e-9c41-6f0a8d2b7e13")


def _plan(api: Client, path) -> dict:
    return api.call("POST", "plans", {"plan": {
        "name": path.name, "provider_id": LOCAL_PROVIDER,
        "resources": [{"id": str(uuid.uuid5(DIRECTORY_NS, str(path))), "type": TYPE,
                       "name": str(path), "extra_info": {"path": str(path)}}]}})["plan"]


def _protect(api: Client, plan: dict) -> dict:
    cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                  {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
    return api.checkpoint(cp)


def test_an_owned_root_is_closed_to_other_projects(local_env):  # noqa: F811
    tmp, providers, roots = local_env
    owner, other = uuid.uuid4().hex, uuid.uuid4().hex
    mine, shared = tmp / "mine", roots
    (mine / "secret").mkdir(parents=True)
    (mine / "secret" / "payroll.csv").write_text("alice,100\n")
    (shared / "public").mkdir()
    (shared / "public" / "readme").write_text("hello\n")
    with karbor_server({"DEFAULT": {"provider_config_dir": providers},
                        "local_directory": {"roots": f"{mine}:{owner},{shared}"}}) as srv:
        a, b = Client(srv.url, owner), Client(srv.url, other)
        listed = {p: [i["name"] for i in c.call("GET", f"protectables/{TYPE}/instances")
                      ["instances"]] for p, c in (("a", a), ("b", b))}
        assert str(mine / "secret") in listed["a"] and str(shared / "public") in listed["a"]
        assert listed["b"] == [str(shared / "public")]
        secret_id = str(uuid.uuid5(DIRECTORY_NS, str(mine / "secret")))
        b.call("GET", f"protectables/{TYPE}/instances/{secret_id}", status=404)

        # Project b names the directory's id in a plan of its own: the protect fails and
        # its checkpoint holds nothing of it.
        stolen = _protect(b, _plan(b, mine / "secret"))
        assert stolen["status"] == "error", stolen
        assert "alice" not in str(stolen)

        assert _protect(a, _plan(a, mine / "secret"))["status"] == "available"

        # Project b restores its own checkpoint into the owned root: refused, nothing made.
        own = _protect(b, _plan(b, shared / "public"))
        assert own["status"] == "available", srv.log()[-2000:]
        refused = b.call("POST", "restores", {"restore": {
            "provider_id": LOCAL_PROVIDER, "checkpoint_id": own["id"],
            "parameters": {TYPE: {"restore_path": str(mine / "planted")}}}}, status=400)
        assert "roots open to this project" in refused["badRequest"]["message"]
        assert b.call("GET", "restores")["restores"] == []
        assert not (mine / "planted").exists()
        assert sorted(p.name for p in mine.iterdir()) == ["secret"]
        # ... and into a shared place it works.
        done = b.restore(own["id"], {"restore_path": str(shared / "copy")})
        assert done["status"] == "success", done
        assert (shared / "copy" / "readme").read_text() == "hello\n"
