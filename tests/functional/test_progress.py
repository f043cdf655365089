"""Live progress, summaries and reasons in the records themselves (issue 11, items 1-2).

A real karbor-server (its own database on SQLite and on PostgreSQL), the Local Provider, a
real PostgreSQL server whose database is dumped: while the protect runs, the checkpoint's
``progress`` advances (several distinct values, never backwards) and ends at 100 %, and its
``summary`` agrees with what the bank grew by; a failure carries its reason in the body.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from tests.functional._server import karbor_server, local_providers
from tests.functional.test_local_directory import LOCAL_PROVIDER, Client
from tests.functional.test_local_postgresql import db_id, sql

PG = "Karbor::PostgreSQL::Database"
DIR = "Karbor::Local::Directory"
DIRECTORY_NS = uuid.UUID("6a1d3c52-0b7e-5f8e-9c41-6f0a8d2b7e13")


def _tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path, postgresql_server):
    providers = local_providers(tmp_path)
    roots = tmp_path / "roots"
    roots.mkdir()
    url = f"postgresql://postgres@127.0.0.1:{postgresql_server.port}"
    config = {"DEFAULT": {"provider_config_dir": providers, "progress_interval": 0.2},
              "local_directory": {"roots": roots},
              "postgresql": {"servers": f"main:{url},gone:postgresql://postgres@127.0.0.1:1"}}
    if request.param == "postgresql":
        config["database"] = {"connection": postgresql_server.create_database()}
    return tmp_path, roots, config


def _plan(api: Client, resources: list[dict]) -> str:
    return api.call("POST", "plans", {"plan": {
        "name": "progress", "provider_id": LOCAL_PROVIDER,
        "resources": resources}})["plan"]["id"]


def _watch(api: Client, path: str, running: str, timeout: float = 300) -> tuple[dict, list]:
    """Poll a record until it leaves ``running``; the progress documents seen meanwhile."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = next(iter(api.call("GET", path).values()))
        if record["status"] != running:
            return record, seen
        if record.get("progress"):
            seen.append(record["progress"])
        time.sleep(0.05)
    raise AssertionError(f"{path} still {running} after {timeout} s")


def test_protect_and_restore_of_a_database_show_progress_and_a_summary(env,
                                                                         postgresql_server):
    tmp, _roots, config = env
    name = f"big_{uuid.uuid4().hex[:8]}"
    sql(postgresql_server, f'CREATE DATABASE "{name}"')
    # About 200 MB of text that compresses poorly: pg_dump takes a few seconds.
    sql(postgresql_server, "CREATE TABLE blobs AS SELECT g AS id, "
        "string_agg(md5(random()::text || g::text || s::text), '') AS data "
        "FROM generate_series(1, 50000) g, generate_series(1, 120) s GROUP BY g",
        database=name)
    bank = tmp / "bank"
    with karbor_server(config) as srv:
        api = Client(srv.url, uuid.uuid4().hex)
        plan = _plan(api, [{"id": db_id("main", name), "type": PG, "name": f"main/{name}",
                            "extra_info": {"server": "main", "database": name}}])
        before = _tree_bytes(bank) if bank.exists() else 0
        cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                      {"checkpoint": {"plan_id": plan}})["checkpoint"]["id"]
        record, seen = _watch(api, f"providers/{LOCAL_PROVIDER}/checkpoints/{cp}",
                              "protecting")
        assert record["status"] == "available", (record, srv.log()[-3000:])
        done = [p["bytes"]["done"] for p in seen]
        assert len(set(done)) >= 3, f"progress hardly moved: {done}"
        assert done == sorted(done), f"progress went backwards: {done}"
        assert all(p["bytes"]["total"] for p in seen if p["bytes"]["done"]), \
            "no estimate of the size"
        assert any(p["rate_bytes_per_second"] for p in seen)
        assert any(p["eta_seconds"] is not None for p in seen)
        percents = [p["percent"] for p in seen]
        assert percents == sorted(percents) and max(percents) < 100, percents
        assert seen[0]["resources"] == {"total": 1, "done": 0, "failed": 0}

        final = record["progress"]
        assert final["percent"] == 100.0 and final["resources"]["done"] == 1
        summary = record["summary"]
        growth = _tree_bytes(bank) - before
        assert summary["logical_bytes"] == final["bytes"]["done"] >= done[-1]
        assert summary["logical_bytes"] > 50 * 1024 * 1024
        # What the summary says the bank grew by is what it grew by (packs; the index,
        # manifest and checkpoint objects are small beside them).
        assert summary["bytes_added"] <= growth <= summary["bytes_added"] * 1.02 + 256 * 1024
        assert summary["dedup_ratio"] >= 1.0 and summary["compression_ratio"] > 0
        assert summary["duration_seconds"] > 0
        assert summary["resources"] == {f"{PG}#{db_id('main', name)}":
                                        {"status": "available", "reason": None}}
        assert record["resources_status"] == {f"{PG}#{db_id('main', name)}": "available"}

        # The restore into a new database shows its resource running, then the plugin's
        # own outcome under the new database's id.
        restore = api.call("POST", "restores", {"restore": {
            "provider_id": LOCAL_PROVIDER, "checkpoint_id": cp,
            "parameters": {PG: {"restore_name": f"{name}_copy"}}}})["restore"]["id"]
        statuses = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            r = api.call("GET", f"restores/{restore}")["restore"]
            statuses.append(r["resources_status"])
            if r["status"] != "in_progress":
                break
            time.sleep(0.05)
        assert r["status"] == "success", r
        assert {f"{PG}#{db_id('main', name)}": "restoring"} in statuses, statuses[:5]
        assert r["resources_status"] == {f"{PG}#{db_id('main', f'{name}_copy')}":
                                         "available"}
        assert r["progress"]["percent"] == 100.0
        assert r["summary"]["resources"]


def _big_tree(top: Path) -> int:
    """A little over 1 GiB: random files, a sparse disk image, many small files."""
    (top / "small").mkdir(parents=True)
    block = os.urandom(16 * 1024 * 1024)
    for i in range(5):
        with open(top / f"random-{i}.bin", "wb") as f:
            for j in range(8):  # 128 MiB each, no two blocks alike
                f.write(bytes([i, j]) + block[2:])
    with open(top / "disk.img", "wb") as f:
        f.seek(400 * 1024 * 1024)
        f.write(b"end")
    for i in range(1000):
        (top / "small" / f"note-{i}.txt").write_text(f"note {i}\n" * 50)
    return _tree_bytes(top)


def test_a_big_directory_protect_and_restore_show_progress(env):
    tmp, roots, config = env
    top = roots / "big"
    size = _big_tree(top)
    assert size >= 1024 ** 3
    bank = tmp / "bank"
    with karbor_server(config) as srv:
        api = Client(srv.url, uuid.uuid4().hex)
        res_id = str(uuid.uuid5(DIRECTORY_NS, str(top)))
        plan = _plan(api, [{"id": res_id, "type": DIR, "name": str(top),
                            "extra_info": {"path": str(top)}}])
        before = _tree_bytes(bank) if bank.exists() else 0
        cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                      {"checkpoint": {"plan_id": plan}})["checkpoint"]["id"]
        record, seen = _watch(api, f"providers/{LOCAL_PROVIDER}/checkpoints/{cp}",
                              "protecting")
        assert record["status"] == "available", (record, srv.log()[-3000:])
        done = [p["bytes"]["done"] for p in seen]
        assert len(set(done)) >= 3, f"progress hardly moved: {done}"
        assert done == sorted(done), f"progress went backwards: {done}"
        assert [p["bytes"]["total"] for p in seen if p["bytes"]["total"]][-1] == size
        files = [p["files"]["done"] for p in seen if "files" in p]
        assert files and files == sorted(files)
        summary = record["summary"]
        assert summary["logical_bytes"] == size == record["progress"]["bytes"]["done"]
        assert record["progress"]["files"] == {"total": 1006, "done": 1006}
        growth = _tree_bytes(bank) - before
        assert summary["bytes_added"] <= growth <= summary["bytes_added"] * 1.02 + 256 * 1024
        # The zeros of the disk image are stored once: far less is new than was read.
        assert summary["dedup_ratio"] > 1.3

        target = roots / "back"
        restore = api.call("POST", "restores", {"restore": {
            "provider_id": LOCAL_PROVIDER, "checkpoint_id": cp,
            "parameters": {DIR: {"restore_path": str(target)}}}})["restore"]["id"]
        r, seen = _watch(api, f"restores/{restore}", "in_progress")
        assert r["status"] == "success", r
        assert r["progress"]["bytes"] == {"total": size, "done": size}
        assert r["progress"]["percent"] == 100.0
        assert _tree_bytes(target) == size


def test_reasons_are_in_the_failed_records_own_body(env, karborclient):
    tmp, roots, config = env
    with karbor_server(config) as srv:
        project = uuid.uuid4().hex
        api = Client(srv.url, project)
        # A database whose server cannot be reached.
        plan = _plan(api, [{"id": db_id("gone", "shop"), "type": PG, "name": "gone/shop",
                            "extra_info": {"server": "gone", "database": "shop"}}])
        cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                      {"checkpoint": {"plan_id": plan}})["checkpoint"]["id"]
        record = api.checkpoint(cp)
        assert record["status"] == "error"
        key = f"{PG}#{db_id('gone', 'shop')}"
        assert "unreachable" in record["reason"], record
        assert record["resources_status"] == {key: "error"}
        assert "unreachable" in record["resources_reason"][key]
        assert record["summary"]["resources"][key]["status"] == "error"
        assert record["progress"]["resources"]["failed"] == 1

        # A directory that is gone by the time the protect runs.
        path = roots / "vanishing"
        path.mkdir()
        res_id = str(uuid.uuid5(DIRECTORY_NS, str(path)))
        plan = _plan(api, [{"id": res_id, "type": DIR, "name": str(path),
                            "extra_info": {"path": str(path)}}])
        os.rmdir(path)
        cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                      {"checkpoint": {"plan_id": plan}})["checkpoint"]["id"]
        record = api.checkpoint(cp)
        assert record["status"] == "error"
        assert str(path) in record["resources_reason"][f"{DIR}#{res_id}"], record

        # The original client's checkpoint-show prints the reason as it is.
        import subprocess
        out = subprocess.run(
            [karborclient, "--os-no-client-auth", "--karbor-url",
             f"{srv.url}/v1/{project}", "--os-auth-token", f"demo:{project}",
             "checkpoint-show", LOCAL_PROVIDER, cp],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "reason" in out.stdout and str(path) in out.stdout


def test_a_plugin_that_raises_leaves_its_reason_in_the_checkpoint(tmp_path, monkeypatch):
    """A third-party plugin raising a plain exception: the checkpoint says which resource
    failed and why, the other resource's outcome is kept apart."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
    provider = str(uuid.uuid4())
    providers = tmp_path / "providers.d"
    providers.mkdir()
    (providers / "slow.conf").write_text(
        f"[provider]\nname = Slow Provider\nid = {provider}\n"
        "plugin = tests.functional.plugins.slow:SlowProtectionPlugin\n"
        "bank = karbor-fs-bank-plugin\nenabled = True\n")
    with karbor_server({"DEFAULT": {"provider_config_dir": providers}}) as srv:
        project = uuid.uuid4().hex
        api = Client(srv.url, project)
        server = str(uuid.uuid4())
        plan = api.call("POST", "plans", {"plan": {
            "name": "raises", "provider_id": provider,
            "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"},
                          {"id": server, "type": "OS::Nova::Server", "name": "s"}],
            "parameters": {"OS::Nova::Server": {"fail": "disk on fire"}}}})["plan"]
        cp = api.call("POST", f"providers/{provider}/checkpoints",
                      {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
        record = api.wait(f"providers/{provider}/checkpoints/{cp}", {"available", "error"})
        assert record["status"] == "error", record
        key = f"OS::Nova::Server#{server}"
        assert record["resources_status"][key] == "error"
        assert record["resources_reason"][key] == "RuntimeError: disk on fire"
        assert "disk on fire" in record["reason"] and server in record["reason"]
        assert record["resources_status"].get(f"OS::Keystone::Project#{project}") != "error"
        assert record["summary"]["resources"][key] == {"status": "error",
                                                       "reason": "RuntimeError: disk on fire"}
        assert "Traceback" not in record["reason"]
