"""A plugin package found by entry point runs all five operations; copies survive the loss of
the primary bank; a fresh database is rebuilt from the bank (``karbor-manage bank import``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.functional._server import karbor_server

PACKAGE_DIR = Path(__file__).parent / "plugin_package"
PROVIDER = "0d7c5e4a-8f6b-4f57-a7c3-5b7e2a0c9d11"
MANAGE = Path(sys.executable).parent / "karbor-manage"


def _provider_dir(tmp: Path) -> Path:
    providers = tmp / "providers.d"
    providers.mkdir()
    (providers / "test.conf").write_text(
        "[provider]\nname = Test Plugin Provider\n"
        f"id = {PROVIDER}\nplugin = karbor-test-plugin\nbank = karbor-fs-bank-plugin\n"
        "copy_bank = karbor-fs-bank-plugin\nenabled = True\n\n"
        f"[file_system_bank_plugin]\nfile_system_bank_path = {tmp / 'primary'}\n\n"
        f"[copy_bank]\nfile_system_bank_path = {tmp / 'second'}\n")
    return providers


class Client:
    def __init__(self, url: str, project: str):
        self.base = f"{url}/v1/{project}"
        self.headers = {"X-Auth-Token": f"demo:{project}"}

    def call(self, method: str, path: str, body=None, status: int = 200) -> dict:
        resp = requests.request(method, f"{self.base}/{path}", json=body,
                                headers=self.headers, timeout=30)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.content else {}

    def wait(self, path: str, done: set[str], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = next(iter(self.call("GET", path).values()))
            if record["status"] in done:
                return record
            time.sleep(0.1)
        raise AssertionError(f"{path} never reached {done}")

    def checkpoint(self, cp_id: str) -> dict:
        return self.wait(f"providers/{PROVIDER}/checkpoints/{cp_id}",
                         {"available", "finished", "error", "deleted", "error-deleting"})


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{PACKAGE_DIR}:{Path(__file__).parents[2]}")
    return tmp_path, _provider_dir(tmp_path)


def test_plugin_package_runs_every_operation_and_copies_survive(plugin_env):
    tmp, providers = plugin_env
    project = uuid.uuid4().hex
    with karbor_server({"DEFAULT": {"provider_config_dir": providers}}) as srv:
        api = Client(srv.url, project)
        provider = api.call("GET", f"providers/{PROVIDER}")["provider"]
        schema = provider["extended_info_schema"]["options_schema"]["OS::Keystone::Project"]
        assert schema["properties"] == {"tag": {"type": "string"}}

        plan = api.call("POST", "plans", {"plan": {
            "name": "pkg", "provider_id": PROVIDER,
            "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"}],
            "parameters": {"OS::Keystone::Project": {"tag": "t1"}}}})["plan"]
        cp_id = api.call("POST", f"providers/{PROVIDER}/checkpoints",
                         {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
        assert api.checkpoint(cp_id)["status"] == "available"
        section = tmp / "primary" / "karbor" / "checkpoints" / cp_id / "resource-data" / project
        assert (section / "data").read_bytes().endswith(b"binary payload\xfft1")
        assert json.loads((section / "trace").read_text()) == [
            "protect:prepare_begin", "protect:prepare_finish", "protect:main",
            "protect:complete"]

        verification = api.call("POST", "verifications", {"verification": {
            "provider_id": PROVIDER, "checkpoint_id": cp_id, "parameters": {}}})["verification"]
        done = api.wait(f"verifications/{verification['id']}", {"success", "fail"})
        assert done["status"] == "success"
        assert done["resources_status"] == {f"OS::Keystone::Project#{project}": "available"}

        restore = api.call("POST", "restores", {"restore": {
            "provider_id": PROVIDER, "checkpoint_id": cp_id,
            "parameters": {"OS::Keystone::Project": {"restore_name": "again"}}}})["restore"]
        done = api.wait(f"restores/{restore['id']}", {"success", "fail"})
        assert done["status"] == "success"
        key = f"OS::Keystone::Project#restored-{project}"
        assert done["resources_status"] == {key: "available"}
        assert done["resources_reason"] == {key: "again"}

        pairs = api.call("POST", f"providers/{PROVIDER}/checkpoints/action", {
            "copy": {"plan_id": plan["id"], "parameters": {}}})["copy"]["checkpoint_id"]
        copy_id = pairs[0]["checkpoint_copy_id"]
        copied = api.checkpoint(copy_id)
        assert copied["status"] == "finished", copied
        copy_section = (tmp / "second" / "karbor" / "checkpoints" / copy_id / "resource-data"
                        / project)
        assert (copy_section / "copied_by_plugin").exists()

        # The primary bank loses the original's data: the copy is still restorable.
        shutil.rmtree(tmp / "primary" / "karbor" / "checkpoints" / cp_id)
        restore = api.call("POST", "restores", {"restore": {
            "provider_id": PROVIDER, "checkpoint_id": copy_id, "parameters": {}}})["restore"]
        assert api.wait(f"restores/{restore['id']}", {"success", "fail"})["status"] == "success"
        restore = api.call("POST", "restores", {"restore": {
            "provider_id": PROVIDER, "checkpoint_id": cp_id, "parameters": {}}})["restore"]
        failed = api.wait(f"restores/{restore['id']}", {"success", "fail"})
        assert failed["status"] == "fail"

        # Delete runs the plugin's delete hooks and removes the copy from its bank.
        api.call("DELETE", f"providers/{PROVIDER}/checkpoints/{copy_id}")
        assert api.checkpoint(copy_id)["status"] == "deleted"
        assert not (tmp / "second" / "karbor" / "checkpoints" / copy_id).exists()
        listed = api.call("GET", f"providers/{PROVIDER}/checkpoints")["checkpoints"]
        assert [c["id"] for c in listed] == [cp_id]


def test_bank_import_rebuilds_a_fresh_database(plugin_env):
    tmp, providers = plugin_env
    project = uuid.uuid4().hex
    with karbor_server({"DEFAULT": {"provider_config_dir": providers}}) as srv:
        api = Client(srv.url, project)
        plan = api.call("POST", "plans", {"plan": {
            "name": "dr", "provider_id": PROVIDER,
            "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"}]}})
        ids = []
        for _ in range(3):
            ids.append(api.call("POST", f"providers/{PROVIDER}/checkpoints", {
                "checkpoint": {"plan_id": plan["plan"]["id"]}})["checkpoint"]["id"])
        for cp_id in ids:
            assert api.checkpoint(cp_id)["status"] == "available"
    # A writer died mid-protect: its index still says "protecting".
    index = tmp / "primary" / "karbor" / "checkpoints" / ids[0] / "index.json"
    index.write_text(index.read_text().replace('"status": "available"',
                                               '"status": "protecting"'))

    with karbor_server({"DEFAULT": {"provider_config_dir": providers}}) as fresh:
        api = Client(fresh.url, project)
        assert api.call("GET", f"providers/{PROVIDER}/checkpoints")["checkpoints"] == []
        out = subprocess.run([str(MANAGE), "--config-file", str(fresh.config_file), "bank",
                              "import", PROVIDER], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "imported 2 checkpoint(s), 1 unfinished one(s) as error" in out.stdout
        listed = {c["id"]: c for c in api.call(
            "GET", f"providers/{PROVIDER}/checkpoints")["checkpoints"]}
        assert set(listed) == set(ids)
        assert listed[ids[0]]["status"] == "error"
        assert {listed[i]["status"] for i in ids[1:]} == {"available"}
        assert listed[ids[1]]["protection_plan"]["id"] == plan["plan"]["id"]
        restore = api.call("POST", "restores", {"restore": {
            "provider_id": PROVIDER, "checkpoint_id": ids[1], "parameters": {}}})["restore"]
        assert api.wait(f"restores/{restore['id']}", {"success", "fail"})["status"] == "success"
