"""Cinder volumes protected by Karbor, end to end, against a real Keystone + Cinder.

The seed's "OS Infra Provider" scenario with the unmodified python-karborclient 2.1.0 in
normal Keystone mode (Karbor found in the catalog as ``data-protect``): two Cinder volumes
with data written into them, a plan, a checkpoint made of real Cinder backups, a restore
into two new volumes holding the same data, a verification, and a checkpoint deletion that
removes the backups.  The same with the volume snapshot provider.  And the failure path: a
volume deleted between plan and protect gives an ``error`` checkpoint with the reason,
and leaves no snapshot or backup behind.

Cinder runs the real NFS driver on a bind-mounted directory (``cloud.py``), so a volume is
the file ``volume-<id>`` of the export: the tests write the data there before protecting
and read the restored volumes' files back.  The test deployment's OS Infra Provider keeps
its bank on the file system (no Swift runs here) and polls Cinder every second.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional._cli import as_json, column, props, rows, wait_for
from tests.functional.conftest import karborclient  # noqa: F401 (the client fixture)
from tests.integration.keystone_server import Account
from tests.integration.openstack.cloud import OpenStackCloud
from tests.integration.test_keystone_mode import KeystoneKarbor

OS_INFRA = "cf56bd3e-97a7-4078-b6d5-f36246333fd9"
OS_SNAPSHOT = "90d5bfea-a259-41e6-80c6-dcfcfcd9d827"
OS_FS_BANK = "6659007d-6f66-4a0f-9cb4-17d6aded0bb9"
VOLUME = "OS::Cinder::Volume"
GIB = 1 << 30
OPERATION_TIMEOUT = 600
STUCK_TIMEOUT = 40   # poll_timeout of the OS_FS_BANK provider here
# the session's cloud starts (and installs, the first time) inside the first test's setup
pytestmark = pytest.mark.timeout(2400)


class CinderKarbor(KeystoneKarbor):
    """karbor-server in Keystone mode whose OpenStack providers poll Cinder every second
    and keep their bank on the file system."""

    def write_config(self) -> None:
        super().write_config()
        providers = self.tmpdir / "providers.d"
        for path in providers.glob("openstack-*.conf"):
            text = path.read_text()
            text = re.sub(r"(?m)^bank = karbor-swift-bank-plugin$",
                          "bank = karbor-fs-bank-plugin", text)
            text = re.sub(r"(?m)^# (poll_interval =).*$", r"\1 1", text)
            text += ("\n[file_system_bank_plugin]\n"
                     f"file_system_bank_path = {self.state_path / ('bank-' + path.stem)}\n")
            if path.name == "openstack-fs-bank.conf":
                # the provider of the backup-service test: a stuck backup fails soon
                text = re.sub(r"(?m)^# (poll_timeout =).*$", rf"\1 {STUCK_TIMEOUT}", text)
            if "[volume_snapshot_plugin]" not in text:
                text += "\n[volume_snapshot_plugin]\npoll_interval = 1\n"
            if "[cinder_backup_protection_plugin]" not in text:
                text += "\n[cinder_backup_protection_plugin]\npoll_interval = 1\n"
            path.write_text(text)


@pytest.fixture(scope="module")
def karbor_cinder(openstack_cloud: OpenStackCloud, karborclient,  # noqa: F811
                  tmp_path_factory) -> Iterator[CinderKarbor]:
    srv = CinderKarbor(openstack_cloud.keystone, karborclient,
                       tmp_path_factory.mktemp("karbor-cinder"))
    ks = openstack_cloud.keystone
    ks.provision_karbor(srv.port)
    # Karbor sends its own token as the service token of every call it makes for a user;
    # Cinder (service_token_roles_required, as deployed) wants it to carry the service role.
    service_project = ks._find("projects", "service")
    service_role = ks._find("roles", "service")
    ks.request("PUT", f"/projects/{service_project['id']}/users/{ks.karbor.user_id}/roles/"
                      f"{service_role['id']}")
    try:
        srv.start()
    except Exception as exc:
        srv.stop()
        pytest.fail(f"cannot start karbor-server in Keystone mode: {exc}\n{srv.log()}")
    yield srv
    code = srv.stop()
    assert code == 0, f"karbor-server did not exit cleanly on SIGTERM ({code}):\n{srv.log()}"


# --------------------------------------------------------------------------- helpers


class Cinder:
    """Cinder as ``account`` sees it, plus admin views, over REST."""

    def __init__(self, cloud: OpenStackCloud, account: Account) -> None:
        self.cloud = cloud
        self.token, self.project_id = cloud.token(account)

    def req(self, method: str, path: str, **kw):
        return self.cloud.request(self.token, self.project_id, method, path, **kw)

    def create_volume(self, name: str, size: int = 1) -> str:
        vol = self.req("POST", "/volumes", json={"volume": {"size": size, "name": name}})
        volume_id = vol.json()["volume"]["id"]
        self.wait_volume(volume_id, "available")
        return volume_id

    def volume(self, volume_id: str) -> dict | None:
        resp = self.req("GET", f"/volumes/{volume_id}", expected=())
        return resp.json()["volume"] if resp.status_code == 200 else None

    def wait_volume(self, volume_id: str, want: str) -> dict:
        def status():
            vol = self.volume(volume_id)
            return vol["status"] if vol else "gone"
        wait_for(status, {want, "error", "gone"} - ({"gone"} if want != "gone" else set()),
                 timeout=OPERATION_TIMEOUT, interval=1, what=f"volume {volume_id} {want}")
        assert status() == want, self.volume(volume_id)
        return self.volume(volume_id) or {}

    def delete_volume(self, volume_id: str) -> None:
        self.req("DELETE", f"/volumes/{volume_id}")
        self.wait_volume(volume_id, "gone")

    def backups(self, volume_ids: set[str]) -> list[dict]:
        """Every backup of these volumes, whoever made it (admin view)."""
        listed = self.cloud.admin_request("GET", "/backups/detail",
                                          params={"all_tenants": "1"}).json()["backups"]
        return [b for b in listed if b["volume_id"] in volume_ids]

    def snapshots(self, volume_ids: set[str]) -> list[dict]:
        listed = self.cloud.admin_request("GET", "/snapshots/detail",
                                          params={"all_tenants": "1"}).json()["snapshots"]
        return [s for s in listed if s["volume_id"] in volume_ids]


def write_pattern(path: Path, seed: int) -> dict[int, bytes]:
    """Write 1 MiB of distinct data at three offsets of a 1 GiB volume file."""
    chunks = {}
    fd = os.open(path, os.O_WRONLY)
    try:
        for i, offset in enumerate((0, 300 * (1 << 20) + 4096, GIB - (2 << 20))):
            data = os.urandom(1 << 20) + bytes([seed, i]) * 8
            os.pwrite(fd, data, offset)
            chunks[offset] = data
        os.fsync(fd)
    finally:
        os.close(fd)
    return chunks


def read_pattern(path: Path, chunks: dict[int, bytes]) -> bool:
    with open(path, "rb") as f:
        for offset, data in chunks.items():
            f.seek(offset)
            if f.read(len(data)) != data:
                return False
    return True


def checkpoint(srv: CinderKarbor, account: Account, provider: str, cp_id: str) -> dict:
    resp = srv.request("GET", f"providers/{provider}/checkpoints/{cp_id}", account=account)
    return resp.json()["checkpoint"] if resp.status_code == 200 else {"status": "gone"}


def why(srv: CinderKarbor, account: Account, checkpoint_id: str) -> str:
    """The operation logs of a checkpoint (their error_info) and the server's log tail."""
    logs = srv.request("GET", "operation_logs", account=account,
                       params={"checkpoint_id": checkpoint_id}).json()["operation_logs"]
    summary = [(log["operation_type"], log["status"], log["error_info"]) for log in logs]
    return (f"operation logs: {summary}"
            f"\nkarbor-server log:\n{srv.log()[-4000:]}")


def wait_checkpoint(srv, account, provider, cp_id, want: set[str]) -> dict:
    wait_for(lambda: checkpoint(srv, account, provider, cp_id)["status"],
             want | {"error", "gone"} if "gone" in want else want | {"error"},
             timeout=OPERATION_TIMEOUT, interval=1, what=f"checkpoint {cp_id} {want}")
    return checkpoint(srv, account, provider, cp_id)


def wait_restore(srv, account, restore_id: str) -> dict:
    def status():
        return srv.request("GET", f"restores/{restore_id}", account=account).json()[
            "restore"]["status"]
    wait_for(status, {"success", "fail"}, timeout=OPERATION_TIMEOUT, interval=1,
             what=f"restore {restore_id}")
    return srv.request("GET", f"restores/{restore_id}", account=account).json()["restore"]


def _dict(value):
    return as_json(value) if isinstance(value, str) else (value or {})


def protect_restore_delete(srv: CinderKarbor, cinder: Cinder, cloud: OpenStackCloud,
                           provider: str, volumes: dict[str, dict[int, bytes]],
                           names: dict[str, str]) -> dict:
    """The seed scenario with ``provider``: plan, checkpoint, verify, restore, delete.
    Returns what the checks below need to know (the new volumes)."""
    demo = srv.keystone.demo
    resources = ",".join(f"{vid}={VOLUME}={names[vid]}" for vid in volumes)
    plan = props(srv.ok(demo, "plan-create", f"volumes via {provider[:8]}", provider,
                        resources, "--description", "two Cinder volumes"))
    assert plan["status"] == "suspended"
    assert {r["id"] for r in as_json(plan["resources"])} == set(volumes) \
        if plan["resources"].startswith("[") else True

    t0 = time.monotonic()
    created = props(srv.ok(demo, "checkpoint-create", provider, plan["id"]))
    cp = wait_checkpoint(srv, demo, provider, created["id"], {"available"})
    protect_s = time.monotonic() - t0
    assert cp["status"] == "available", why(srv, demo, created["id"])
    shown = props(srv.ok(demo, "checkpoint-show", provider, created["id"]))
    assert shown["status"] == "available"
    graph = shown["resource_graph"]
    for vid in volumes:
        assert vid in graph, graph

    # verification: the plugin checks the backups / snapshots in Cinder
    verification = props(srv.ok(demo, "verification-create", provider, created["id"]))
    def verify_status():
        return srv.request("GET", f"verifications/{verification['id']}",
                           account=demo).json()["verification"]
    wait_for(lambda: verify_status()["status"], {"success", "fail"},
             timeout=OPERATION_TIMEOUT, interval=1, what="verification")
    verified = verify_status()
    assert verified["status"] == "success", (verified, srv.log()[-4000:])
    assert _dict(verified["resources_status"]) == {
        f"{VOLUME}#{vid}": "available" for vid in volumes}

    # restore: two new volumes with the same data
    t1 = time.monotonic()
    restore = props(srv.ok(demo, "restore-create", provider, created["id"], "--parameters-json",
                           json.dumps({VOLUME: {"restore_description": "restored by Karbor"}})))
    done = wait_restore(srv, demo, restore["id"])
    restore_s = time.monotonic() - t1
    assert done["status"] == "success", (done, srv.log()[-4000:])
    statuses = _dict(done["resources_status"])
    new_ids = [key.split("#", 1)[1] for key, value in statuses.items()
               if key.startswith(VOLUME + "#") and value == "available"]
    assert len(new_ids) == 2, statuses
    assert not set(new_ids) & set(volumes), "the restore must create new volumes"
    restored = {}
    for new_id in new_ids:
        vol = cinder.volume(new_id)
        assert vol is not None and vol["status"] == "available", vol
        assert vol["description"] == "restored by Karbor", vol
        source = vol["name"].split("@", 1)[1] if "@" in vol["name"] else None
        assert source in volumes, vol["name"]
        assert read_pattern(cloud.volume_file(new_id), volumes[source]), \
            f"restored volume {new_id} does not hold the data of {source}"
        restored[source] = new_id
    assert set(restored) == set(volumes)
    listed = rows(srv.ok(demo, "restore-list"))
    assert restore["id"] in [r["Id"] for r in listed]

    return {"checkpoint": created["id"], "plan": plan["id"], "restored": restored,
            "protect_s": round(protect_s, 1), "restore_s": round(restore_s, 1)}


def delete_checkpoint(srv: CinderKarbor, provider: str, cp_id: str) -> None:
    demo = srv.keystone.demo
    srv.ok(demo, "checkpoint-delete", provider, cp_id)
    wait_for(lambda: checkpoint(srv, demo, provider, cp_id)["status"],
             {"gone", "deleted", "error-deleting"}, timeout=OPERATION_TIMEOUT, interval=1,
             what=f"checkpoint {cp_id} deleted")
    assert checkpoint(srv, demo, provider, cp_id)["status"] in ("gone", "deleted")
    assert cp_id not in column(srv.ok(demo, "checkpoint-list", provider), "Id")


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def volumes(karbor_cinder, openstack_cloud) -> tuple[Cinder, dict, dict]:
    cinder = Cinder(openstack_cloud, karbor_cinder.keystone.demo)
    data, names = {}, {}
    for i, name in enumerate(("volume1", "volume2")):
        vid = cinder.create_volume(name)
        path = openstack_cloud.volume_file(vid)
        assert path.is_file(), f"the NFS driver's file of volume {vid} is missing"
        data[vid] = write_pattern(path, i)
        names[vid] = name
    return cinder, data, names


def test_os_infra_provider_backs_up_and_restores_cinder_volumes(
        karbor_cinder: CinderKarbor, openstack_cloud: OpenStackCloud, volumes):
    srv, demo = karbor_cinder, karbor_cinder.keystone.demo
    cinder, data, names = volumes

    providers = column(srv.ok(demo, "provider-list"), "Id")
    assert {OS_INFRA, OS_SNAPSHOT, OS_FS_BANK} <= set(providers), providers
    schema = as_json(props(srv.ok(demo, "provider-show", OS_INFRA))["extended_info_schema"])
    assert set(schema["options_schema"][VOLUME]["properties"]) == {
        "backup_name", "backup_mode", "container", "description", "force"}
    assert set(schema["restore_schema"][VOLUME]["properties"]) == {
        "volume_id", "restore_name", "restore_description"}
    assert VOLUME in column(srv.ok(demo, "protectable-list"), "Protectable type")
    listed = column(srv.ok(demo, "protectable-list-instances", VOLUME), "Id")
    assert set(data) <= set(listed), listed

    result = protect_restore_delete(srv, cinder, openstack_cloud, OS_INFRA, data, names)
    # the checkpoint is made of real Cinder backups, one per volume, and no snapshot stays
    backups = cinder.backups(set(data))
    assert {b["volume_id"] for b in backups} == set(data), backups
    assert all(b["status"] == "available" for b in backups), backups
    assert cinder.snapshots(set(data)) == [], "the temporary snapshots must be deleted"
    backup_dir = openstack_cloud.root / "cinder" / "backup"
    assert any(p.is_file() for p in backup_dir.rglob("*")), "no backup data on disk"

    # restore onto existing volumes: the restore schema's volume_id, per resource
    targets = {vid: cinder.create_volume(f"target of {names[vid]}") for vid in data}
    params = {f"{VOLUME}#{vid}": {"volume_id": target} for vid, target in targets.items()}
    restore = props(srv.ok(demo, "restore-create", OS_INFRA, result["checkpoint"],
                           "--parameters-json", json.dumps(params)))
    done = wait_restore(srv, demo, restore["id"])
    assert done["status"] == "success", (done, srv.log()[-4000:])
    assert _dict(done["resources_status"]) == {
        f"{VOLUME}#{target}": "available" for target in targets.values()}
    for vid, target in targets.items():
        assert cinder.volume(target)["status"] == "available"
        assert read_pattern(openstack_cloud.volume_file(target), data[vid]), \
            f"volume {target} does not hold the data of {vid} after the restore onto it"

    delete_checkpoint(srv, OS_INFRA, result["checkpoint"])
    wait_for(lambda: len(cinder.backups(set(data))), {0}, timeout=OPERATION_TIMEOUT,
             interval=1, what="backups deleted")
    print(f"\nOS Infra Provider: protect {result['protect_s']} s, restore "
          f"{result['restore_s']} s (two 1 GiB volumes)")
    for new_id in [*result["restored"].values(), *targets.values()]:
        cinder.delete_volume(new_id)


def test_volume_snapshot_provider(karbor_cinder: CinderKarbor,
                                  openstack_cloud: OpenStackCloud, volumes):
    srv, demo = karbor_cinder, karbor_cinder.keystone.demo
    cinder, data, names = volumes
    schema = as_json(props(srv.ok(demo, "provider-show", OS_SNAPSHOT))["extended_info_schema"])
    assert set(schema["options_schema"][VOLUME]["properties"]) == {
        "snapshot_name", "description", "force"}
    assert set(schema["restore_schema"][VOLUME]["properties"]) == {
        "restore_name", "restore_description"}

    result = protect_restore_delete(srv, cinder, openstack_cloud, OS_SNAPSHOT, data, names)
    snaps = cinder.snapshots(set(data))
    assert {s["volume_id"] for s in snaps} == set(data), snaps
    assert all(s["status"] == "available" for s in snaps), snaps
    assert cinder.backups(set(data)) == []
    # the restored volumes depend on nothing: delete them, then the checkpoint
    for new_id in result["restored"].values():
        cinder.delete_volume(new_id)
    delete_checkpoint(srv, OS_SNAPSHOT, result["checkpoint"])
    wait_for(lambda: len(cinder.snapshots(set(data))), {0}, timeout=OPERATION_TIMEOUT,
             interval=1, what="snapshots deleted")
    print(f"\nsnapshot provider: protect {result['protect_s']} s, restore "
          f"{result['restore_s']} s")


@pytest.mark.parametrize("provider", [OS_INFRA, OS_SNAPSHOT])
def test_volume_deleted_before_protect(karbor_cinder: CinderKarbor,
                                       openstack_cloud: OpenStackCloud, provider: str):
    srv, demo = karbor_cinder, karbor_cinder.keystone.demo
    cinder = Cinder(openstack_cloud, demo)
    keep = cinder.create_volume("kept")
    doomed = cinder.create_volume("doomed")
    plan = props(srv.ok(demo, "plan-create", "doomed plan", provider,
                        f"{keep}={VOLUME}=kept,{doomed}={VOLUME}=doomed"))
    cinder.delete_volume(doomed)

    created = props(srv.ok(demo, "checkpoint-create", provider, plan["id"]))
    cp = wait_checkpoint(srv, demo, provider, created["id"], {"available"})
    assert cp["status"] == "error", cp
    shown = props(srv.ok(demo, "checkpoint-show", provider, created["id"]))
    assert shown["status"] == "error"
    # the reason, as a user finds it: the checkpoint's operation log
    logs = srv.request("GET", "operation_logs", account=demo,
                       params={"checkpoint_id": created["id"]}).json()["operation_logs"]
    assert [log["status"] for log in logs] == ["error"], logs
    reason = logs[0]["error_info"] or ""
    assert doomed in reason and "not-found" in reason, reason
    # nothing Karbor made stays behind in Cinder, for either volume
    wait_for(lambda: len(cinder.snapshots({keep, doomed}))
             + len(cinder.backups({keep, doomed})), {0}, timeout=120, interval=1,
             what="no orphan snapshot or backup")
    # the error checkpoint can be deleted
    delete_checkpoint(srv, provider, created["id"])
    cinder.delete_volume(keep)


def test_failed_backup_leaves_nothing_behind(karbor_cinder: CinderKarbor,
                                             openstack_cloud: OpenStackCloud):
    """Cinder fails the backup itself (its container cannot be made: a file is in the
    way): the temporary snapshot and the failed backup are removed, the checkpoint is
    ``error`` with Cinder's reason."""
    srv, demo = karbor_cinder, karbor_cinder.keystone.demo
    cinder = Cinder(openstack_cloud, demo)
    vid = cinder.create_volume("unlucky")
    (openstack_cloud.root / "cinder" / "backup" / "in-the-way").write_text("not a directory")
    plan = props(srv.ok(demo, "plan-create", "unlucky plan", OS_INFRA, f"{vid}={VOLUME}=unlucky",
                        "--parameters-json", json.dumps({VOLUME: {
                            "container": "in-the-way", "backup_mode": "full"}})))
    created = props(srv.ok(demo, "checkpoint-create", OS_INFRA, plan["id"]))
    cp = wait_checkpoint(srv, demo, OS_INFRA, created["id"], {"available"})
    assert cp["status"] == "error", cp
    logs = srv.request("GET", "operation_logs", account=demo,
                       params={"checkpoint_id": created["id"]}).json()["operation_logs"]
    reason = logs[0]["error_info"] or ""
    assert f"Error backing up volume {vid}" in reason and "is error" in reason, reason
    wait_for(lambda: len(cinder.snapshots({vid})) + len(cinder.backups({vid})), {0},
             timeout=120, interval=1, what="no orphan snapshot or backup")
    cinder.delete_volume(vid)


@pytest.mark.parametrize("provider,limit", [(OS_INFRA, "backups"), (OS_SNAPSHOT, "snapshots")])
def test_cinder_quota_exceeded(karbor_cinder: CinderKarbor, openstack_cloud: OpenStackCloud,
                               provider: str, limit: str):
    """The project may make no more backups (or snapshots): the checkpoint is ``error`` with
    Cinder's quota message, and nothing Karbor started stays behind."""
    srv, demo = karbor_cinder, karbor_cinder.keystone.demo
    cinder = Cinder(openstack_cloud, demo)
    project_id = openstack_cloud.token(demo)[1]
    vid = cinder.create_volume(f"over-{limit}")
    plan = props(srv.ok(demo, "plan-create", f"over {limit}", provider,
                        f"{vid}={VOLUME}=over-{limit}"))
    openstack_cloud.admin_request("PUT", f"/os-quota-sets/{project_id}",
                                  json={"quota_set": {limit: 0}})
    try:
        created = props(srv.ok(demo, "checkpoint-create", provider, plan["id"]))
        cp = wait_checkpoint(srv, demo, provider, created["id"], {"available"})
        assert cp["status"] == "error", cp
        logs = srv.request("GET", "operation_logs", account=demo,
                           params={"checkpoint_id": created["id"]}).json()["operation_logs"]
        reason = logs[0]["error_info"] or ""
        assert vid in reason and "exceeded" in reason.lower(), reason
        # ... and in the checkpoint's own body, for the resource (what *-show prints).
        assert vid in cp["reason"] and "exceeded" in cp["reason"].lower(), cp
        key = f"{VOLUME}#{vid}"
        assert cp["resources_status"] == {key: "error"}, cp
        assert "exceeded" in cp["resources_reason"][key].lower(), cp
        wait_for(lambda: len(cinder.snapshots({vid})) + len(cinder.backups({vid})), {0},
                 timeout=120, interval=1, what="no orphan snapshot or backup")
    finally:
        openstack_cloud.admin_request("DELETE", f"/os-quota-sets/{project_id}")
    delete_checkpoint(srv, provider, created["id"])
    cinder.delete_volume(vid)


def test_backup_service_stopped_mid_protect(karbor_cinder: CinderKarbor,
                                            openstack_cloud: OpenStackCloud):
    """cinder-backup dies while it makes the checkpoint's backup: the backup stays
    ``creating``, the plugin's bounded wait fails the checkpoint with that reason, and the
    backup and snapshot Cinder would not let go of yet are still known to the checkpoint:
    once cinder-backup is back (it marks the backup ``error``), deleting the checkpoint
    removes them. Nothing is left behind, nothing is forgotten."""
    srv, demo = karbor_cinder, karbor_cinder.keystone.demo
    cinder = Cinder(openstack_cloud, demo)
    vid = cinder.create_volume("interrupted")
    write_pattern(openstack_cloud.volume_file(vid), 7)
    plan = props(srv.ok(demo, "plan-create", "interrupted plan", OS_FS_BANK,
                        f"{vid}={VOLUME}=interrupted"))
    created = props(srv.ok(demo, "checkpoint-create", OS_FS_BANK, plan["id"]))
    try:
        wait_for(lambda: tuple(b["status"] for b in cinder.backups({vid})), {("creating",)},
                 timeout=OPERATION_TIMEOUT, interval=0.2, what="the backup being made")
        openstack_cloud.kill_cinder_service("backup")
        cp = wait_checkpoint(srv, demo, OS_FS_BANK, created["id"], {"available"})
        assert cp["status"] == "error", cp
        logs = srv.request("GET", "operation_logs", account=demo,
                           params={"checkpoint_id": created["id"]}).json()["operation_logs"]
        reason = logs[0]["error_info"] or ""
        assert vid in reason and "still creating" in reason, reason
    finally:
        if openstack_cloud.processes["cinder-backup"].poll() is not None:
            openstack_cloud.restart_cinder_service("backup")
    wait_for(lambda: tuple(b["status"] for b in cinder.backups({vid})), {("error",)},
             timeout=OPERATION_TIMEOUT, interval=1, what="cinder-backup marking it error")
    delete_checkpoint(srv, OS_FS_BANK, created["id"])
    wait_for(lambda: len(cinder.snapshots({vid})) + len(cinder.backups({vid})), {0},
             timeout=120, interval=1, what="no orphan snapshot or backup")
    cinder.delete_volume(vid)
