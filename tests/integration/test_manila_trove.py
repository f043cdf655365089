"""Manila shares and Trove databases, end to end against a real Keystone and **named fakes**.

Manila and Trove cannot run here, so ``tests/integration/fakes/manila.py`` and
``fakes/trove.py`` stand in for them: small real HTTP servers speaking the real Manila v2 and
Trove v1.0 REST API for the calls Karbor makes (statuses that change over time, the
services' rules and error bodies, faults the tests inject), checking every token against
the real Keystone.  They are registered in that Keystone's catalog as ``sharev2`` and
``database``; ``karbor-server`` runs in Keystone mode with the provider
``tests/integration/manila-trove.conf`` (the two plugins, a file-system bank, 4 s poll
timeouts) and is driven by python-karborclient 2.1.0 and by HTTP.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.functional._cli import as_json, as_python, column, props, wait_for
from tests.functional.conftest import karborclient  # noqa: F401 (the client fixture)
from tests.integration.fakes._base import KeystoneValidator
from tests.integration.fakes.manila import FakeManila
from tests.integration.fakes.trove import FakeTrove
from tests.integration.keystone_server import REGION, Account, KeystoneServer
from tests.integration.test_keystone_mode import KeystoneKarbor, keystone  # noqa: F401

PROVIDER_FILE = Path(__file__).with_name("manila-trove.conf")
PROVIDER = "4d1b3c8e-6f0a-4e7b-9c2d-5a8f1e3b7c60"
PROJECT, SHARE, DATABASE = "OS::Keystone::Project", "OS::Manila::Share", "OS::Trove::Instance"
TIMEOUT = 60


class Cloud:
    def __init__(self, srv: KeystoneKarbor, manila: FakeManila, trove: FakeTrove) -> None:
        self.srv, self.manila, self.trove = srv, manila, trove
        self.ks: KeystoneServer = srv.keystone
        self.http = requests.Session()

    # -- the fakes' own API, as a user of the cloud
    def _call(self, method: str, url: str, account: Account, **kw) -> requests.Response:
        headers = {"X-Auth-Token": self.srv.token(account), **kw.pop("headers", {})}
        return self.http.request(method, url, timeout=30, headers=headers, **kw)

    def create_share(self, account: Account, name: str, size: int = 1) -> str:
        resp = self._call("POST", f"{self.manila.url}/v2/{account.project_id}/shares",
                          account, json={"share": {"share_proto": "NFS", "size": size,
                                                   "name": name}})
        assert resp.status_code == 200, resp.text
        share_id = resp.json()["share"]["id"]
        wait_for(lambda: self.manila.live("share").get(share_id, {}).get("status"),
                 {"available"}, timeout=10, what=f"share {name}")
        return share_id

    def create_instance(self, account: Account, name: str) -> str:
        resp = self._call("POST", f"{self.trove.url}/v1.0/{account.project_id}/instances",
                          account, json={"instance": {
                              "name": name, "flavorRef": "2", "volume": {"size": 2},
                              "datastore": {"type": "mysql", "version": "5.7.29"}}})
        assert resp.status_code == 200, resp.text
        instance_id = resp.json()["instance"]["id"]
        wait_for(lambda: self.trove.live("instance").get(instance_id, {}).get("status"),
                 {"ACTIVE"}, timeout=10, what=f"instance {name}")
        return instance_id

    # -- Karbor over HTTP
    def plan(self, account: Account, name: str, resources: list[tuple[str, str, str]],
             parameters: dict | None = None) -> str:
        resp = self.srv.request("POST", "plans", account=account, json={"plan": {
            "name": name, "provider_id": PROVIDER, "parameters": parameters or {},
            "resources": [{"id": i, "type": t, "name": n} for i, t, n in resources]}})
        assert resp.status_code == 200, resp.text
        return resp.json()["plan"]["id"]

    def protect(self, account: Account, plan_id: str, expect: str) -> str:
        resp = self.srv.request("POST", f"providers/{PROVIDER}/checkpoints", account=account,
                                json={"checkpoint": {"plan_id": plan_id}})
        assert resp.status_code in (200, 202), resp.text
        checkpoint_id = resp.json()["checkpoint"]["id"]
        status = wait_for(lambda: self.checkpoint(account, checkpoint_id).get("status"),
                          {"available", "error"}, timeout=TIMEOUT, what="checkpoint")
        assert status == expect, (status, self.reason(account, checkpoint_id),
                                  self.srv.log()[-5000:])
        return checkpoint_id

    def checkpoint(self, account: Account, checkpoint_id: str) -> dict:
        resp = self.srv.request("GET", f"providers/{PROVIDER}/checkpoints/{checkpoint_id}",
                                account=account)
        return resp.json()["checkpoint"] if resp.status_code == 200 else \
            {"status": f"HTTP {resp.status_code}"}

    def reason(self, account: Account, checkpoint_id: str) -> str:
        logs = self.srv.request("GET", "operation_logs", account=account,
                                params={"checkpoint_id": checkpoint_id}).json()
        return " | ".join(log.get("error_info") or "" for log in logs["operation_logs"])

    def delete_checkpoint(self, account: Account, checkpoint_id: str) -> None:
        resp = self.srv.request("DELETE", f"providers/{PROVIDER}/checkpoints/{checkpoint_id}",
                                account=account)
        assert resp.status_code in (200, 202, 204), resp.text
        wait_for(lambda: self.checkpoint(account, checkpoint_id)["status"],
                 {"deleted", "HTTP 404"}, timeout=TIMEOUT, what="deleted checkpoint")

    def run(self, account: Account, kind: str, body: dict) -> dict:
        key = kind[:-1]
        resp = self.srv.request("POST", kind, account=account, json={key: body})
        assert resp.status_code in (200, 202), resp.text
        record_id = resp.json()[key]["id"]

        def status():
            return self.srv.request("GET", f"{kind}/{record_id}",
                                    account=account).json()[key]["status"]

        wait_for(status, {"success", "fail"}, timeout=TIMEOUT, what=key)
        return self.srv.request("GET", f"{kind}/{record_id}", account=account).json()[key]


class ManilaTroveKarbor(KeystoneKarbor):
    def write_config(self) -> None:
        super().write_config()
        shutil.copy(PROVIDER_FILE, self.tmpdir / "providers.d" / PROVIDER_FILE.name)


def _register(ks: KeystoneServer, name: str, service_type: str, url: str) -> None:
    service = ks._ensure("services", "service", name, {"name": name, "type": service_type})
    for interface in ("public", "internal", "admin"):
        ks.request("POST", "/endpoints", json={"endpoint": {
            "service_id": service["id"], "interface": interface, "url": url,
            "region_id": REGION}})


@pytest.fixture(scope="module")
def cloud(keystone, karborclient, tmp_path_factory) -> Iterator[Cloud]:  # noqa: F811
    admin_token: list[str] = []

    def admin() -> str:
        if not admin_token:
            admin_token.append(keystone.token(keystone.admin)[0])
        return admin_token[0]

    validator = KeystoneValidator(keystone.v3, admin)
    manila, trove = FakeManila(validator), FakeTrove(validator)
    manila.start()
    trove.start()
    srv = ManilaTroveKarbor(keystone, karborclient, tmp_path_factory.mktemp("karbor-mt"))
    keystone.provision_karbor(srv.port)
    _register(keystone, "manilav2", FakeManila.SERVICE_TYPE, manila.catalog_url())
    _register(keystone, "trove", FakeTrove.SERVICE_TYPE, trove.catalog_url())
    try:
        srv.start()
    except Exception as exc:
        srv.stop()
        pytest.fail(f"cannot start karbor-server in Keystone mode: {exc}")
    try:
        yield Cloud(srv, manila, trove)
    finally:
        code = srv.stop()
        manila.stop()
        trove.stop()
    assert code == 0, f"karbor-server did not exit cleanly on SIGTERM ({code}):\n{srv.log()}"
    assert "unexpected error" not in srv.log(), srv.log()


@pytest.fixture(autouse=True)
def _no_faults(cloud):
    cloud.manila.faults.clear()
    cloud.trove.faults.clear()
    yield
    cloud.manila.faults.clear()
    cloud.trove.faults.clear()


# --------------------------------------------------------------------------- protectables


def test_protectables(cloud: Cloud):
    srv, demo, other = cloud.srv, cloud.ks.demo, cloud.ks.other
    share = cloud.create_share(demo, "karbor-share-p")
    instance = cloud.create_instance(demo, "karbor-db-p")

    listed = column(srv.ok(demo, "protectable-list"), "Protectable type")
    assert SHARE in listed and DATABASE in listed, listed
    # the original's edges: project -> shares, databases; they have no dependents
    deps = as_python(props(srv.ok(demo, "protectable-show", PROJECT))["dependent_types"])
    assert SHARE in deps and DATABASE in deps, deps
    for leaf in (SHARE, DATABASE):
        assert as_python(props(srv.ok(demo, "protectable-show", leaf))["dependent_types"]) \
            == []

    assert share in column(srv.ok(demo, "protectable-list-instances", SHARE), "Id")
    assert instance in column(srv.ok(demo, "protectable-list-instances", DATABASE), "Id")
    # another project sees neither
    assert share not in column(srv.ok(other, "protectable-list-instances", SHARE), "Id")
    assert instance not in column(srv.ok(other, "protectable-list-instances", DATABASE),
                                  "Id")
    # parameters filter the listing
    assert share in column(srv.ok(demo, "protectable-list-instances", SHARE, "--parameters",
                                  "share_proto=NFS"), "Id")
    assert column(srv.ok(demo, "protectable-list-instances", SHARE, "--parameters",
                         "share_proto=CIFS"), "Id") == []
    assert instance in column(srv.ok(demo, "protectable-list-instances", DATABASE,
                                     "--parameters", "datastore=mysql"), "Id")

    # show-instance: live status from the service
    shown = props(srv.ok(demo, "protectable-show-instance", SHARE, share))
    assert shown["name"] == "karbor-share-p"
    info = as_python(shown["extra_info"])
    assert info["status"] == "available" and info["share_proto"] == "NFS", info
    cloud.manila.set_status("share", share, "extending")
    info = as_python(props(srv.ok(demo, "protectable-show-instance", SHARE, share))
                     ["extra_info"])
    assert info["status"] == "extending", info
    cloud.manila.set_status("share", share, "available")
    shown = props(srv.ok(demo, "protectable-show-instance", DATABASE, instance))
    info = as_python(shown["extra_info"])
    assert info["status"] == "ACTIVE" and info["datastore"] == "mysql" \
        and info["flavor"] == "2" and info["size"] == 2, info
    # an instance being resized is not protectable: absent from the list, refused on show
    cloud.trove.set_status("instance", instance, "RESIZE")
    assert instance not in column(srv.ok(demo, "protectable-list-instances", DATABASE), "Id")
    message, code = srv.fails(demo, "protectable-show-instance", DATABASE, instance)
    assert code == 409, message
    cloud.trove.set_status("instance", instance, "ACTIVE")
    message, code = srv.fails(demo, "protectable-show-instance", SHARE,
                              "0b5b3a52-0000-4000-8000-000000000000")
    assert code == 404, message

    # the project's dependents hold both (Nova, Cinder, Glance, Neutron: not in the catalog)
    project = props(srv.ok(demo, "protectable-show-instance", PROJECT, demo.project_id))
    assert share in project["dependent_resources"], project
    assert instance in project["dependent_resources"], project

    # the fake's microversion rules (Manila's): echoed when supported, 404 beyond the maximum
    url = f"{cloud.manila.url}/v2/{demo.project_id}/shares/{share}"
    resp = cloud._call("GET", url, demo, headers={"X-OpenStack-Manila-API-Version": "2.40"})
    assert resp.headers["X-OpenStack-Manila-API-Version"] == "2.40", resp.headers
    resp = cloud._call("GET", url, demo, headers={"X-OpenStack-Manila-API-Version": "2.99"})
    assert resp.status_code == 404, resp.text
    # ... and Keystone's tokens: a bad one is refused, another project's URL too
    assert cloud.http.get(url, headers={"X-Auth-Token": "bogus"},
                          timeout=30).status_code == 401
    assert cloud._call("GET", url, other).status_code == 400

    # the fakes saw Karbor with the caller's token: no call was refused
    assert ("GET", f"/v2/{demo.project_id}/shares/detail") in cloud.manila.calls
    assert ("GET", f"/v1.0/{demo.project_id}/instances") in cloud.trove.calls


def test_trove_listing_follows_pages(cloud: Cloud):
    srv, demo = cloud.srv, cloud.ks.other
    made = [cloud.create_instance(demo, f"paged-{n}") for n in range(23)]
    listed = column(srv.ok(demo, "protectable-list-instances", DATABASE, "--limit", "100"),
                    "Id")
    assert set(made) <= set(listed), (len(listed), len(made))


# --------------------------------------------------------------------------- protection


def test_protect_restore_verify_delete(cloud: Cloud):
    srv, demo = cloud.srv, cloud.ks.demo
    share = cloud.create_share(demo, "karbor-share", size=2)
    instance = cloud.create_instance(demo, "karbor-db")

    # provider-show: the plugins' schemas
    shown = props(srv.ok(demo, "provider-show", PROVIDER))
    schemas = as_json(shown["extended_info_schema"])
    assert set(schemas["options_schema"][SHARE]["properties"]) == {
        "snapshot_name", "description", "force"}
    assert set(schemas["options_schema"][DATABASE]["properties"]) == {
        "backup_name", "description"}
    assert set(schemas["restore_schema"][SHARE]["properties"]) == {
        "restore_name", "restore_description"}
    assert set(schemas["restore_schema"][DATABASE]["properties"]) == {"restore_name"}
    assert "snapshot_id" in schemas["saved_info_schema"][SHARE]["properties"]
    assert "backup_id" in schemas["saved_info_schema"][DATABASE]["properties"]
    assert schemas["verify_schema"][SHARE]["properties"] == {}

    plan = cloud.plan(demo, "manila+trove", [(share, SHARE, "karbor-share"),
                                             (instance, DATABASE, "karbor-db")],
                      {SHARE: {"snapshot_name": "karbor-snap", "force": False},
                       DATABASE: {"backup_name": "karbor-backup",
                                  "description": "by karbor"}})
    checkpoint = cloud.protect(demo, plan, "available")
    snapshots = [s for s in cloud.manila.live("snapshot").values() if s["share_id"] == share]
    assert [(s["name"], s["status"]) for s in snapshots] == [("karbor-snap", "available")]
    backups = [b for b in cloud.trove.live("backup").values() if b["instance_id"] == instance]
    assert [(b["name"], b["description"], b["status"]) for b in backups] == [
        ("karbor-backup", "by karbor", "COMPLETED")]
    assert cloud.trove.live("instance")[instance]["status"] == "ACTIVE"

    # restore: new share from the snapshot, new instance from the backup
    restore = cloud.run(demo, "restores", {
        "provider_id": PROVIDER, "checkpoint_id": checkpoint, "restore_target": None,
        "parameters": {SHARE: {"restore_name": "restored-share",
                               "restore_description": "from karbor"},
                       DATABASE: {"restore_name": "restored-db"}}})
    assert restore["status"] == "success", restore
    new_shares = {k: v for k, v in cloud.manila.live("share").items()
                  if v["name"] == "restored-share"}
    assert len(new_shares) == 1, new_shares
    new_share_id, new_share = next(iter(new_shares.items()))
    assert new_share["snapshot_id"] == snapshots[0]["id"]
    assert new_share["description"] == "from karbor"
    assert (new_share["size"], new_share["share_proto"], new_share["status"]) == \
        (2, "NFS", "available")
    new_dbs = {k: v for k, v in cloud.trove.live("instance").items()
               if v["name"] == "restored-db"}
    assert len(new_dbs) == 1, new_dbs
    new_db_id, new_db = next(iter(new_dbs.items()))
    assert new_db["restorePoint"] == {"backupRef": backups[0]["id"]}
    assert (new_db["flavor"]["id"], new_db["volume"]["size"], new_db["status"]) == \
        ("2", 2, "ACTIVE")
    assert restore["resources_status"] == {f"{SHARE}#{new_share_id}": "available",
                                           f"{DATABASE}#{new_db_id}": "available"}, restore

    verification = cloud.run(demo, "verifications", {
        "provider_id": PROVIDER, "checkpoint_id": checkpoint, "parameters": {}})
    assert verification["status"] == "success", verification
    assert verification["resources_status"] == {f"{SHARE}#{share}": "available",
                                                f"{DATABASE}#{instance}": "available"}

    # verification sees a snapshot gone bad
    cloud.manila.set_status("snapshot", snapshots[0]["id"], "error")
    verification = cloud.run(demo, "verifications", {
        "provider_id": PROVIDER, "checkpoint_id": checkpoint, "parameters": {}})
    assert verification["status"] == "fail", verification
    assert verification["resources_status"][f"{SHARE}#{share}"] == "error"
    assert "is error" in json.dumps(verification["resources_reason"]), verification
    cloud.manila.set_status("snapshot", snapshots[0]["id"], "available")

    # the original client sees the checkpoint; deleting it removes snapshot and backup
    assert checkpoint in column(srv.ok(demo, "checkpoint-list", PROVIDER), "Id")
    srv.ok(demo, "checkpoint-delete", PROVIDER, checkpoint)
    wait_for(lambda: cloud.checkpoint(demo, checkpoint)["status"], {"deleted", "HTTP 404"},
             timeout=TIMEOUT, what="deleted checkpoint")
    assert snapshots[0]["id"] not in cloud.manila.live("snapshot")
    assert backups[0]["id"] not in cloud.trove.live("backup")
    # the restored resources are the user's: untouched
    assert new_share_id in cloud.manila.live("share")
    assert new_db_id in cloud.trove.live("instance")


def _left(cloud: Cloud, share: str, instance: str) -> tuple[list, list]:
    return ([s for s in cloud.manila.live("snapshot").values() if s["share_id"] == share],
            [b for b in cloud.trove.live("backup").values() if b["instance_id"] == instance])


def test_failed_snapshot_or_backup_leaves_nothing(cloud: Cloud):
    demo = cloud.ks.demo
    share = cloud.create_share(demo, "failing-share")
    instance = cloud.create_instance(demo, "failing-db")
    plan = cloud.plan(demo, "failing", [(share, SHARE, "failing-share"),
                                        (instance, DATABASE, "failing-db")])

    # Manila puts the snapshot into error: the checkpoint is an error with the reason, the
    # snapshot is deleted, and the backup made meanwhile for the database is removed too
    cloud.manila.faults["snapshot"] = "error"
    checkpoint = cloud.protect(demo, plan, "error")
    reason = cloud.reason(demo, checkpoint)
    assert f"Error creating snapshot for share {share}" in reason, reason
    assert "is error" in reason, reason
    wait_for(lambda: str(_left(cloud, share, instance) == ([], [])), {"True"}, timeout=10,
             what="nothing left in Manila and Trove")
    cloud.manila.faults.clear()

    # Trove fails the backup: same
    cloud.trove.faults["backup"] = "error"
    checkpoint = cloud.protect(demo, plan, "error")
    reason = cloud.reason(demo, checkpoint)
    assert f"Error creating backup for database instance {instance}" in reason, reason
    assert "FAILED" in reason, reason
    wait_for(lambda: str(_left(cloud, share, instance) == ([], [])), {"True"}, timeout=10,
             what="nothing left in Manila and Trove")
    assert cloud.trove.live("instance")[instance]["status"] == "ACTIVE"
    # an error checkpoint can be deleted (nothing to remove)
    cloud.delete_checkpoint(demo, checkpoint)


def test_waits_are_bounded(cloud: Cloud):
    demo = cloud.ks.demo
    share = cloud.create_share(demo, "stuck-share")
    instance = cloud.create_instance(demo, "stuck-db")
    plan = cloud.plan(demo, "stuck", [(share, SHARE, "stuck-share"),
                                      (instance, DATABASE, "stuck-db")])
    cloud.manila.faults["snapshot"] = "stuck"
    cloud.trove.faults["backup"] = "stuck"
    started = time.monotonic()
    checkpoint = cloud.protect(demo, plan, "error")
    assert time.monotonic() - started < 30
    reason = cloud.reason(demo, checkpoint)
    assert "timed out" in reason and "after 4 s (poll_timeout)" in reason, reason
    # neither service lets a running snapshot/backup be deleted: they stay recorded, the
    # reason says so, and deleting the checkpoint once they settled removes them
    assert "could not be removed yet" in reason, reason
    snapshots, backups = _left(cloud, share, instance)
    assert len(snapshots) == 1 and len(backups) == 1, (snapshots, backups)
    cloud.manila.set_status("snapshot", snapshots[0]["id"], "available")
    cloud.trove.set_status("backup", backups[0]["id"], "COMPLETED")
    cloud.manila.faults.clear()
    cloud.trove.faults.clear()
    cloud.delete_checkpoint(demo, checkpoint)
    assert _left(cloud, share, instance) == ([], [])


def test_failed_restore_removes_what_it_made(cloud: Cloud):
    demo = cloud.ks.demo
    share = cloud.create_share(demo, "restore-share")
    instance = cloud.create_instance(demo, "restore-db")
    plan = cloud.plan(demo, "restore fails", [(share, SHARE, "restore-share"),
                                              (instance, DATABASE, "restore-db")])
    checkpoint = cloud.protect(demo, plan, "available")
    cloud.manila.faults["share"] = "error"
    restore = cloud.run(demo, "restores", {
        "provider_id": PROVIDER, "checkpoint_id": checkpoint, "restore_target": None,
        "parameters": {SHARE: {"restore_name": "doomed-share"},
                       DATABASE: {"restore_name": "doomed-db"}}})
    assert restore["status"] == "fail", restore
    reasons = json.dumps(restore["resources_reason"])
    assert f"Error restoring share {share}" in reasons and "is error" in reasons, restore
    cloud.manila.faults.clear()

    def leftovers() -> str:
        shares = [s for s in cloud.manila.live("share").values()
                  if s["name"] == "doomed-share"]
        dbs = [i for i in cloud.trove.live("instance").values() if i["name"] == "doomed-db"]
        return f"{len(shares)} shares, {len(dbs)} instances"

    wait_for(leftovers, {"0 shares, 0 instances"}, timeout=10, what="restore leftovers")
    cloud.delete_checkpoint(demo, checkpoint)
