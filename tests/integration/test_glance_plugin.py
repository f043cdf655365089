"""The Glance image protection plugin against real services, end to end.

What runs: a real Keystone and Glance (``keystone_server.py``, ``glance_server.py``), a real
Swift with s3api (``swift_server``), and ``karbor-server`` in Keystone mode with two test
providers made from ``glance_image_provider.conf``: ``karbor-image-protection-plugin`` with a
Swift bank and with an S3 bank. The unmodified python-karborclient 2.1.0 CLI (normal
Keystone mode) creates plans, checkpoints, restores and verifications; statuses are read over
HTTP; the bank is inspected (and damaged) directly with swiftclient / boto3.

The scenario, on each bank: an image of a few MiB of non-trivial data is protected twice (the
second checkpoint adds next to nothing to the bank: its data deduplicates), the source image
is deleted, restored from the first checkpoint (new image active, byte-identical, same
formats and properties), verified; a flipped byte in a stored pack makes verification fail
for the image and a restore fail without leaving a half-made image; deleting a checkpoint
removes the image's manifest.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import openstack.connection
import pytest

from tests.functional._cli import column, props, wait_for
from tests.functional.conftest import karborclient  # noqa: F401 (the client fixture)
from tests.integration.glance_server import GlanceServer
from tests.integration.keystone_server import REGION, Account, KeystoneServer
from tests.integration.test_banks import _render, _StoreView, s3_sections, swift_sections
from tests.integration.test_keystone_mode import KeystoneKarbor, keystone  # noqa: F401

IMAGE = "OS::Glance::Image"
PROVIDERS = {"swift": "5a3e9b1c-2d4f-4e6a-8b7c-9d0e1f2a3b4c",
             "s3": "6b4f0c2d-3e5a-4f7b-9c8d-0e1f2a3b4c5d"}
TEMPLATE = Path(__file__).with_name("glance_image_provider.conf")
MiB = 1 << 20
IMAGE_SIZE = 6 * MiB + 12345
OP_TIMEOUT = 180


def _image_data(seed: int) -> bytes:
    """Non-trivial data: random stretches, text with counters, runs of zeros (a sparse
    disk), so compression and chunk boundaries both have work to do."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < IMAGE_SIZE:
        kind = rng.randrange(3)
        if kind == 0:
            part = rng.randbytes(rng.randrange(64 << 10, 512 << 10))
        elif kind == 1:
            part = "".join(f"line {i} of block {size}: {rng.random():.12f}\n"
                           for i in range(rng.randrange(1000, 8000))).encode()
        else:
            part = bytes(rng.randrange(4096, 256 << 10))
        parts.append(part)
        size += len(part)
    return b"".join(parts)[:IMAGE_SIZE]


class GlanceKarbor(KeystoneKarbor):
    """Keystone-mode ``karbor-server`` whose providers.d holds only the test providers."""

    def __init__(self, keystone: KeystoneServer, client: str, tmpdir: Path,  # noqa: F811
                 providers: dict[str, str]) -> None:
        super().__init__(keystone, client, tmpdir)
        self.providers = providers

    def write_config(self) -> None:
        super().write_config()
        directory = self.tmpdir / "providers.d"
        shutil.rmtree(directory)
        directory.mkdir()
        for kind, text in self.providers.items():
            (directory / f"glance-{kind}.conf").write_text(text)


class Bank:
    """The bucket/container of one test provider, seen directly."""

    def __init__(self, kind: str, server) -> None:
        self.kind = kind
        self.name, self.lease_name = f"kbimg-{uuid.uuid4().hex[:12]}", \
            f"kbimg-{uuid.uuid4().hex[:12]}-lease"
        self.sections = (s3_sections(server, self.name, self.lease_name) if kind == "s3"
                         else swift_sections(server, self.name, self.lease_name))
        self._server = server
        self._view: _StoreView | None = None

    @property
    def view(self) -> _StoreView:
        if self._view is None:
            self._view = _StoreView(self.kind, self._server, self.name, self.lease_name)
        return self._view

    def provider_file(self) -> str:
        return TEMPLATE.read_text().format(kind=self.kind, provider_id=PROVIDERS[self.kind],
                                           bank_sections=_render(self.sections))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        """Every object under ``prefix`` with its size in bytes."""
        client = self.view.client
        if self.kind == "s3":
            if self.name not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
                return {}  # the bank makes its bucket on first write
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.name,
                                                                      Prefix=prefix)
            return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}
        import swiftclient

        try:
            _, listing = client.get_container(self.name, prefix=prefix, full_listing=True)
        except swiftclient.ClientException as exc:
            if exc.http_status == 404:
                return {}  # the bank makes its container on first write
            raise
        return {o["name"]: o["bytes"] for o in listing}

    def total(self) -> int:
        return sum(self.sizes().values())

    def write_raw(self, key: str, body: bytes, metadata: dict) -> None:
        client = self.view.client
        if self.kind == "s3":
            client.put_object(Bucket=self.name, Key=key, Body=body, Metadata=metadata)
        else:
            client.put_object(self.name, key, body, headers={
                f"x-object-meta-{k}": v for k, v in metadata.items()})


@pytest.fixture(scope="module")
def cloud(keystone, karborclient, swift_server, tmp_path_factory  # noqa: F811
          ) -> Iterator[tuple[GlanceKarbor, GlanceServer, dict[str, Bank]]]:
    banks = {kind: Bank(kind, swift_server) for kind in PROVIDERS}
    srv = GlanceKarbor(keystone, karborclient, tmp_path_factory.mktemp("karbor-glance"),
                       {kind: bank.provider_file() for kind, bank in banks.items()})
    keystone.provision_karbor(srv.port)
    try:
        glance = GlanceServer(keystone, tmp_path_factory.mktemp("glance"))
    except Exception as exc:  # installation failed: say why, never skip
        pytest.fail(f"cannot install Glance: {exc}")
    try:
        glance.start()
    except Exception as exc:
        glance.stop()
        pytest.fail(f"cannot start Glance: {exc}")
    try:
        srv.start()
    except Exception as exc:
        srv.stop()
        glance.stop()
        pytest.fail(f"cannot start karbor-server in Keystone mode: {exc}")
    yield srv, glance, banks
    code = srv.stop()
    glance.stop()
    assert code == 0, f"karbor-server did not exit cleanly on SIGTERM ({code}):\n{srv.log()}"


# --------------------------------------------------------------------------- helpers


def _sdk(ks: KeystoneServer, account: Account) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_url=ks.v3, username=account.username, password=account.password,
        project_name=account.project_name, user_domain_id="default",
        project_domain_id="default", region_name=REGION, interface="public")


def _wait_image(conn, image_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (current := conn.image.get_image(image_id).status) != status:
        assert time.monotonic() < deadline, f"image {image_id} is {current}, not {status}"
        time.sleep(0.3)


def _download(conn, image_id: str) -> bytes:
    resp = conn.image.get(f"/images/{image_id}/file")
    assert resp.status_code == 200, resp.text
    return resp.content


def _record(srv: GlanceKarbor, account: Account, path: str) -> dict:
    resp = srv.request("GET", path, account=account)
    assert resp.status_code == 200, resp.text
    return next(iter(resp.json().values()))


def _checkpoint(srv, account, provider_id: str, plan_id: str) -> dict:
    created = props(srv.ok(account, "checkpoint-create", provider_id, plan_id))
    path = f"providers/{provider_id}/checkpoints/{created['id']}"
    wait_for(lambda: _record(srv, account, path)["status"], {"available", "error"},
             timeout=OP_TIMEOUT, interval=0.5, what="checkpoint")
    record = _record(srv, account, path)
    assert record["status"] == "available", (record, srv.log()[-6000:])
    return record


def _restore(srv, account, provider_id: str, checkpoint_id: str, *args: str) -> dict:
    created = props(srv.ok(account, "restore-create", provider_id, checkpoint_id, *args))
    wait_for(lambda: _record(srv, account, f"restores/{created['id']}")["status"],
             {"success", "fail", "error"}, timeout=OP_TIMEOUT, interval=0.5, what="restore")
    return _record(srv, account, f"restores/{created['id']}")


def _verify(srv, account, provider_id: str, checkpoint_id: str) -> dict:
    created = props(srv.ok(account, "verification-create", provider_id, checkpoint_id))
    wait_for(lambda: _record(srv, account, f"verifications/{created['id']}")["status"],
             {"success", "fail", "error"}, timeout=OP_TIMEOUT, interval=0.5,
             what="verification")
    return _record(srv, account, f"verifications/{created['id']}")


def _images_named(conn, name: str) -> list:
    return [i for i in conn.image.images() if i.name == name]


# --------------------------------------------------------------------------- the scenario


def test_provider_shows_the_plugin_schemas(cloud):
    srv, _, _ = cloud
    demo = srv.keystone.demo
    for provider_id in PROVIDERS.values():
        info = srv.request("GET", f"providers/{provider_id}", account=demo).json()["provider"]
        schemas = info["extended_info_schema"]
        assert "restore_name" in schemas["restore_schema"][IMAGE]["properties"]
        assert "backup_name" in schemas["options_schema"][IMAGE]["properties"]
        assert "image_metadata" in schemas["saved_info_schema"][IMAGE]["properties"]
        assert schemas["verify_schema"][IMAGE]["type"] == "object"
    shown = srv.ok(demo, "provider-show", PROVIDERS["swift"])
    assert "restore_name" in shown and "image_metadata" in shown


@pytest.mark.parametrize("kind", ["swift", "s3"])
def test_image_protect_restore_verify_delete(cloud, kind):
    srv, _, banks = cloud
    ks = srv.keystone
    demo, bank, provider_id = ks.demo, banks[kind], PROVIDERS[kind]
    conn = _sdk(ks, demo)
    data = _image_data(seed=len(kind))
    md5 = hashlib.md5(data).hexdigest()
    source_name = f"karbor-source-{kind}-{uuid.uuid4().hex[:6]}"
    image = conn.image.create_image(
        name=source_name, data=data, disk_format="raw", container_format="ovf",
        visibility="private", min_disk=1, min_ram=64, tags=["karbor-test"],
        karbor_origin=f"glance-plugin-{kind}")
    created_images = [image.id]
    try:
        _wait_image(conn, image.id, "active")
        assert conn.image.get_image(image.id).checksum == md5

        plan = props(srv.ok(demo, "plan-create", f"image plan {kind}", provider_id,
                            f"{image.id}={IMAGE}={source_name}"))
        assert image.id in plan["resources"]

        # -- protect; the image's data is one manifest of the bank's chunk store
        empty = bank.total()
        first = _checkpoint(srv, demo, provider_id, plan["id"])
        manifests = bank.sizes("/chunks/manifests/image/")
        assert f"/chunks/manifests/image/{first['id']}/{image.id}" in manifests, manifests
        after_first = bank.total()
        packs = bank.sizes("/chunks/packs/")
        assert packs, bank.sizes()
        # the data is in the packs (compressed: the text and zero runs shrink)
        assert IMAGE_SIZE // 4 < sum(packs.values()) < IMAGE_SIZE + MiB, packs
        assert after_first - empty > IMAGE_SIZE // 4
        metadata, body = bank.view.read(f"/checkpoints/{first['id']}/resource-data/"
                                        f"{image.id}/metadata")
        saved = json.loads(body)
        assert saved["image_metadata"]["checksum"] == md5
        assert saved["image_metadata"]["disk_format"] == "raw"
        assert saved["image_metadata"]["container_format"] == "ovf"
        assert saved["size"] == IMAGE_SIZE

        # -- a second protect of the unchanged image adds next to nothing
        second = _checkpoint(srv, demo, provider_id, plan["id"])
        grown = bank.total() - after_first
        assert grown < IMAGE_SIZE // 50, (grown, IMAGE_SIZE)

        # -- the source goes; restore it from the first checkpoint
        conn.image.delete_image(image.id)
        restored_name = f"karbor-restored-{kind}"
        restore = _restore(srv, demo, provider_id, first["id"], "--parameters",
                           f"resource_type={IMAGE},restore_name={restored_name}")
        assert restore["status"] == "success", (restore, srv.log()[-6000:])
        new_ids = [key.split("#", 1)[1] for key, status in restore["resources_status"].items()
                   if key.startswith(IMAGE) and status == "available"]
        assert len(new_ids) == 1, restore
        new_id = new_ids[0]
        created_images.append(new_id)
        assert new_id != image.id
        new = conn.image.get_image(new_id)
        assert new.status == "active"
        assert new.name == restored_name
        assert (new.disk_format, new.container_format) == ("raw", "ovf")
        assert new.checksum == md5
        assert (new.min_disk, new.min_ram) == (1, 64)
        assert new.visibility == "private"
        assert "karbor-test" in new.tags
        assert new.properties.get("karbor_origin") == f"glance-plugin-{kind}", new.properties
        assert _download(conn, new_id) == data  # byte-identical

        # -- verification of the second checkpoint reads every chunk back
        verification = _verify(srv, demo, provider_id, second["id"])
        assert verification["status"] == "success", verification
        assert verification["resources_status"] == {f"{IMAGE}#{image.id}": "available"}

        # -- a flipped byte in a stored pack: verification fails for the image ...
        packs = bank.sizes("/chunks/packs/")
        victim = max(packs, key=packs.get)
        pack_meta, pack = bank.view.read(victim)
        damaged = bytearray(pack)
        damaged[len(damaged) // 2] ^= 0x40
        bank.write_raw(victim, bytes(damaged), pack_meta)
        try:
            verification = _verify(srv, demo, provider_id, second["id"])
            assert verification["status"] == "fail", verification
            key = f"{IMAGE}#{image.id}"
            assert verification["resources_status"].get(key) == "error", verification
            assert "corrupt" in verification["resources_reason"].get(key, ""), verification

            # ... and a restore fails without leaving a half-made image behind
            broken_name = f"karbor-broken-{kind}"
            restore = _restore(srv, demo, provider_id, second["id"], "--parameters",
                               f"resource_type={IMAGE},restore_name={broken_name}")
            assert restore["status"] == "fail", restore
            assert restore["resources_status"].get(key) == "error", restore
            assert _images_named(conn, broken_name) == []
        finally:
            bank.write_raw(victim, pack, pack_meta)
        assert _verify(srv, demo, provider_id, second["id"])["status"] == "success"

        # -- deleting a checkpoint removes the image's manifest; the other one stays
        srv.ok(demo, "checkpoint-delete", provider_id, first["id"])
        path = f"providers/{provider_id}/checkpoints/{first['id']}"

        def gone() -> str:
            resp = srv.request("GET", path, account=demo)
            return "deleted" if resp.status_code == 404 else resp.json()["checkpoint"]["status"]

        wait_for(gone, {"deleted", "error-deleting"}, timeout=OP_TIMEOUT, interval=0.5,
                 what="checkpoint delete")
        assert gone() == "deleted"
        manifests = bank.sizes("/chunks/manifests/image/")
        assert f"/chunks/manifests/image/{first['id']}/{image.id}" not in manifests
        assert f"/chunks/manifests/image/{second['id']}/{image.id}" in manifests
        # the remaining checkpoint still restores (its chunks survived the collection)
        restore = _restore(srv, demo, provider_id, second["id"])
        assert restore["status"] == "success", restore
        again = [k.split("#", 1)[1] for k, s in restore["resources_status"].items()
                 if s == "available"]
        created_images.extend(again)
        assert conn.image.get_image(again[0]).checksum == md5
        assert conn.image.get_image(again[0]).name == source_name  # default: original name
        assert first["id"] not in column(srv.ok(demo, "checkpoint-list", provider_id), "Id")
    finally:
        for image_id in created_images:
            conn.image.delete_image(image_id, ignore_missing=True)


def _protect_error(srv, account, provider_id: str, plan_id: str) -> str:
    """Protect, expect an error; the reason the operation log recorded."""
    created = props(srv.ok(account, "checkpoint-create", provider_id, plan_id))
    path = f"providers/{provider_id}/checkpoints/{created['id']}"
    status = wait_for(lambda: _record(srv, account, path)["status"], {"available", "error"},
                      timeout=OP_TIMEOUT, interval=0.5, what="checkpoint")
    assert status == "error", _record(srv, account, path)
    logs = srv.request("GET", "operation_logs", account=account,
                       params={"checkpoint_id": created["id"]}).json()["operation_logs"]
    return " ".join(log.get("error_info") or "" for log in logs)


def test_bounded_wait_restore_target_and_copy(cloud):
    srv, _, banks = cloud
    ks = srv.keystone
    demo, provider_id = ks.demo, PROVIDERS["swift"]
    conn = _sdk(ks, demo)
    made = []
    try:
        # an image that never gets data stays queued: protect gives up after poll_timeout
        queued = conn.image.create_image(name=f"karbor-queued-{uuid.uuid4().hex[:6]}",
                                         disk_format="raw", container_format="bare")
        made.append(queued.id)
        assert conn.image.get_image(queued.id).status == "queued"
        plan = props(srv.ok(demo, "plan-create", "queued image plan", provider_id,
                            f"{queued.id}={IMAGE}={queued.name}"))
        started = time.monotonic()
        reason = _protect_error(srv, demo, provider_id, plan["id"])
        assert "still 'queued' after 10 s (poll_timeout)" in reason, reason
        assert time.monotonic() - started < 60
        assert not [k for k in banks["swift"].sizes("/chunks/manifests/image/")
                    if queued.id in k]

        # a restore into a "target cloud" given by its Keystone and password credentials
        data = _image_data(seed=7)[:MiB]
        image = conn.image.create_image(name=f"karbor-target-{uuid.uuid4().hex[:6]}",
                                        data=data, disk_format="raw",
                                        container_format="bare")
        made.append(image.id)
        _wait_image(conn, image.id, "active")
        plan = props(srv.ok(demo, "plan-create", "target plan", provider_id,
                            f"{image.id}={IMAGE}={image.name}"))
        checkpoint = _checkpoint(srv, demo, provider_id, plan["id"])
        restore = _restore(srv, demo, provider_id, checkpoint["id"],
                           "--restore_target", ks.v3, "--restore_username", demo.username,
                           "--restore_password", demo.password, "--parameters",
                           f"resource_type={IMAGE},restore_name=karbor-on-target")
        assert restore["status"] == "success", restore
        assert restore["restore_target"] == ks.v3
        new_id = [k.split("#", 1)[1] for k, s in restore["resources_status"].items()
                  if s == "available"][0]
        made.append(new_id)
        assert _download(conn, new_id) == data

        # a copy of the checkpoint (same bank: the chunks are shared) restores the same data
        resp = srv.request("POST", f"providers/{provider_id}/checkpoints/action",
                           account=demo, json={"copy": {"plan_id": plan["id"],
                                                        "parameters": {}}})
        assert resp.status_code == 200, resp.text
        pairs = resp.json()["copy"]["checkpoint_id"]
        assert [p["checkpoint_protect_id"] for p in pairs] == [checkpoint["id"]], pairs
        copy_id = pairs[0]["checkpoint_copy_id"]
        path = f"providers/{provider_id}/checkpoints/{copy_id}"
        status = wait_for(lambda: _record(srv, demo, path)["status"], {"finished", "error"},
                          timeout=OP_TIMEOUT, interval=0.5, what="copy")
        assert status == "finished", (_record(srv, demo, path), srv.log()[-4000:])
        assert f"/chunks/manifests/image/{copy_id}/{image.id}" in \
            banks["swift"].sizes("/chunks/manifests/image/")
        restore = _restore(srv, demo, provider_id, copy_id)
        assert restore["status"] == "success", restore
        copied = [k.split("#", 1)[1] for k, s in restore["resources_status"].items()
                  if s == "available"][0]
        made.append(copied)
        assert _download(conn, copied) == data

        # wrong credentials for the target: the restore fails and creates nothing
        restore = _restore(srv, demo, provider_id, checkpoint["id"],
                           "--restore_target", ks.v3, "--restore_username", demo.username,
                           "--restore_password", "wrong", "--parameters",
                           f"resource_type={IMAGE},restore_name=karbor-never-made")
        assert restore["status"] == "fail", restore
        assert restore["resources_status"] == {f"{IMAGE}#{image.id}": "error"}, restore
        assert _images_named(conn, "karbor-never-made") == []
    finally:
        for image_id in made:
            conn.image.delete_image(image_id, ignore_missing=True)
