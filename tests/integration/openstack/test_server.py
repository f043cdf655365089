"""A Nova server with its boot image, data volume and network, protected and restored.

Real services only: Keystone + MariaDB + RabbitMQ + Cinder (``cloud.py``) and Placement, Nova
(fake virt driver), the Neutron API and Glance (``compute.py``), all on free loopback ports;
``karbor-server`` in Keystone mode with ``server_provider.conf`` (volume, image, server and
network plugins, file-system bank) and the unmodified python-karborclient 2.1.0 CLI.

The scenario, as the cloud's administrator (a flat provider network needs one): an image of a
few MiB; a flat network with a subnet and a security group with a rule; a 1 GiB data volume
with a byte pattern written into it (the NFS driver's volume is a file of the export); a
server booted from the image on that network with that group, the volume attached. A plan with
the server alone: the checkpoint's graph is server -> volume, image, network topology, and
its verification passes. Then
everything is deleted, and the restore makes a new ACTIVE server on the recreated network
with the recreated group, booted from the restored image (same checksum), with a new volume
holding the pattern attached to it. A restore with a flavor that does not exist fails with
that reason and makes nothing (no server, volume, image or network); deleting the checkpoint
removes the Cinder backup.

The fake virt driver cannot make the online snapshot Cinder's NFS driver asks Nova for when
the volume is attached (the backup plugin snapshots first): ``compute.py`` adds it, with
qemu-img on the export's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import openstack.connection
import pytest

from tests.functional._cli import as_json, column, props, wait_for
from tests.functional.conftest import karborclient  # noqa: F401 (the client fixture)
from tests.integration.keystone_server import REGION, Account, KeystoneServer
from tests.integration.openstack.cloud import OpenStackCloud
from tests.integration.openstack.compute import PHYSNET, ComputeCloud
from tests.integration.openstack.compute_fixtures import compute_cloud  # noqa: F401
from tests.integration.openstack.compute_fixtures import timings as compute_timings
from tests.integration.test_keystone_mode import KeystoneKarbor

PROVIDER = "3c1f5e0a-7b2d-4c8e-9f61-2a4d6b8c0e13"
PROVIDER_FILE = Path(__file__).with_name("server_provider.conf")
SERVER = "OS::Nova::Server"
VOLUME = "OS::Cinder::Volume"
IMAGE = "OS::Glance::Image"
NETWORK = "OS::Neutron::Network"
MiB, GiB = 1 << 20, 1 << 30
IMAGE_SIZE = 5 * MiB + 4321
OP_TIMEOUT = 900
# the session's clouds start (and install, the first time) inside the first test's setup
pytestmark = pytest.mark.timeout(3600)


class ServerKarbor(KeystoneKarbor):
    """Keystone-mode ``karbor-server`` whose providers.d holds only the test provider."""

    def write_config(self) -> None:
        super().write_config()
        directory = self.tmpdir / "providers.d"
        shutil.rmtree(directory)
        directory.mkdir()
        (directory / "server.conf").write_text(PROVIDER_FILE.read_text().format(
            provider_id=PROVIDER, bank_path=self.state_path / "bank"))


def _reset_karbor_endpoints(ks: KeystoneServer) -> None:
    """Another module of the session may have put its own karbor-server in the catalog."""
    service = ks._find("services", "karbor")
    if service is None:
        return
    for endpoint in ks.request("GET", "/endpoints",
                               params={"service_id": service["id"]}).json()["endpoints"]:
        ks.request("DELETE", f"/endpoints/{endpoint['id']}")


@pytest.fixture(scope="module")
def karbor(compute_cloud: ComputeCloud, karborclient,  # noqa: F811
           tmp_path_factory) -> Iterator[ServerKarbor]:
    ks = compute_cloud.keystone
    srv = ServerKarbor(ks, karborclient, tmp_path_factory.mktemp("karbor-server"))
    _reset_karbor_endpoints(ks)
    ks.provision_karbor(srv.port)
    # Karbor sends its own token as the service token of the calls it makes for a user; the
    # services (service_token_roles_required, as deployed) want it to carry the service role.
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
    _reset_karbor_endpoints(ks)  # the next module's karbor-server is the one in the catalog
    assert code == 0, f"karbor-server did not exit cleanly on SIGTERM ({code}):\n{srv.log()}"


# --------------------------------------------------------------------------- helpers


def sdk(ks: KeystoneServer, account: Account) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_url=ks.v3, username=account.username, password=account.password,
        project_name=account.project_name, user_domain_id="default",
        project_domain_id="default", region_name=REGION, interface="public")


def image_data(seed: int) -> bytes:
    """Random stretches, text and runs of zeros: a few MiB that look like a disk."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < IMAGE_SIZE:
        kind = rng.randrange(3)
        if kind == 0:
            part = rng.randbytes(rng.randrange(64 << 10, 512 << 10))
        elif kind == 1:
            part = "".join(f"line {i}: {rng.random():.12f}\n"
                           for i in range(rng.randrange(1000, 8000))).encode()
        else:
            part = bytes(rng.randrange(4096, 256 << 10))
        parts.append(part)
        size += len(part)
    return b"".join(parts)[:IMAGE_SIZE]


def write_pattern(path: Path) -> dict[int, bytes]:
    """1 MiB of distinct data at three offsets of a 1 GiB volume file."""
    chunks = {}
    fd = os.open(path, os.O_WRONLY)
    try:
        for i, offset in enumerate((0, 300 * MiB + 4096, GiB - 2 * MiB)):
            data = os.urandom(MiB) + bytes([0xAB, i]) * 8
            os.pwrite(fd, data, offset)
            chunks[offset] = data
        os.fsync(fd)
    finally:
        os.close(fd)
    return chunks


def holds_pattern(path: Path, chunks: dict[int, bytes]) -> bool:
    with open(path, "rb") as f:
        for offset, data in chunks.items():
            f.seek(offset)
            if f.read(len(data)) != data:
                return False
    return True


def wait_status(fetch, want: str, what: str, timeout: float = OP_TIMEOUT,
                stop: frozenset = frozenset({"error", "ERROR", "gone"})) -> str:
    def status():
        try:
            return fetch()
        except openstack.exceptions.NotFoundException:
            return "gone"
    wait_for(status, {want} | (stop - {want}), timeout=timeout, interval=1, what=what)
    got = status()
    assert got == want, f"{what}: {got}"
    return got


def wait_gone(fetch, what: str) -> None:
    wait_status(lambda: fetch().status, "gone", what, stop=frozenset({"error", "ERROR"}))


def record(srv: ServerKarbor, account: Account, path: str) -> dict:
    resp = srv.request("GET", path, account=account)
    assert resp.status_code == 200, resp.text
    return next(iter(resp.json().values()))


def checkpoint_status(srv, account, cp_id: str) -> str:
    resp = srv.request("GET", f"providers/{PROVIDER}/checkpoints/{cp_id}", account=account)
    return resp.json()["checkpoint"]["status"] if resp.status_code == 200 else "gone"


def restore(srv: ServerKarbor, account: Account, cp_id: str, parameters: dict) -> dict:
    created = props(srv.ok(account, "restore-create", PROVIDER, cp_id,
                           "--parameters-json", json.dumps(parameters)))
    wait_for(lambda: record(srv, account, f"restores/{created['id']}")["status"],
             {"success", "fail"}, timeout=OP_TIMEOUT, interval=1, what="restore")
    return record(srv, account, f"restores/{created['id']}")


def _dict(value):
    return as_json(value) if isinstance(value, str) else (value or {})


def restored_ids(done: dict, resource_type: str) -> list[str]:
    return [key.split("#", 1)[1] for key in _dict(done["resources_status"])
            if key.startswith(resource_type + "#")]


class Scenario:
    """What the test made in the cloud, to check against and to clean up."""

    def __init__(self, conn, cloud: OpenStackCloud, compute: ComputeCloud) -> None:
        self.conn = conn
        self.cloud = cloud
        self.compute = compute

    def build(self) -> None:
        c = self.conn
        self.flavor = c.compute.create_flavor(name="karbor.tiny", ram=256, vcpus=1, disk=1)
        data = image_data(7)
        self.image_md5 = hashlib.md5(data).hexdigest()
        image = c.image.create_image(name="karbor-boot-image", data=data, disk_format="raw",
                                     container_format="bare", visibility="private")
        wait_status(lambda: c.image.get_image(image.id).status, "active", "image active",
                    timeout=120)
        self.image = c.image.get_image(image.id)
        assert self.image.checksum == self.image_md5

        self.network = c.network.create_network(
            name="karbor-net", provider_network_type="flat",
            provider_physical_network=PHYSNET)
        self.subnet = c.network.create_subnet(
            network_id=self.network.id, name="karbor-subnet", cidr="10.42.0.0/24",
            ip_version=4, enable_dhcp=False, gateway_ip="10.42.0.1")
        self.group = c.network.create_security_group(name="karbor-ssh",
                                                     description="ssh from anywhere")
        c.network.create_security_group_rule(
            security_group_id=self.group.id, direction="ingress", ethertype="IPv4",
            protocol="tcp", port_range_min=22, port_range_max=22,
            remote_ip_prefix="0.0.0.0/0")

        volume = c.block_storage.create_volume(size=1, name="karbor-data")
        wait_status(lambda: c.block_storage.get_volume(volume.id).status, "available",
                    "data volume available")
        self.volume = c.block_storage.get_volume(volume.id)
        path = self.cloud.volume_file(self.volume.id)
        assert path.is_file(), f"the NFS driver's file of volume {self.volume.id} is missing"
        self.pattern = write_pattern(path)

        server = c.compute.create_server(
            name="karbor-vm", flavor_id=self.flavor.id, image_id=self.image.id,
            networks=[{"uuid": self.network.id}], security_groups=[{"name": "karbor-ssh"}])
        wait_status(lambda: c.compute.get_server(server.id).status, "ACTIVE",
                    "server ACTIVE")
        c.compute.create_volume_attachment(server.id, self.volume.id)
        wait_status(lambda: c.block_storage.get_volume(self.volume.id).status, "in-use",
                    "data volume attached")
        self.server = c.compute.get_server(server.id)

    def ports(self, server_id: str) -> list:
        return list(self.conn.network.ports(device_id=server_id))

    def delete_server(self, server_id: str) -> None:
        self.conn.compute.delete_server(server_id, ignore_missing=True)
        wait_gone(lambda: self.conn.compute.get_server(server_id), f"server {server_id} gone")

    def delete_volume(self, volume_id: str) -> None:
        c = self.conn
        wait_status(lambda: c.block_storage.get_volume(volume_id).status, "available",
                    f"volume {volume_id} detached", stop=frozenset({"error", "gone"}))
        c.block_storage.delete_volume(volume_id)
        wait_gone(lambda: c.block_storage.get_volume(volume_id), f"volume {volume_id} gone")

    def delete_network_topology(self) -> None:
        """Every network and non-default security group of the project."""
        c = self.conn
        project = c.current_project_id
        for port in c.network.ports(project_id=project):
            if not (port.device_owner or "").startswith("network:"):
                c.network.delete_port(port.id)
        for net in c.network.networks(project_id=project):
            c.network.delete_network(net.id)
        for group in c.network.security_groups(project_id=project):
            if group.name != "default":
                c.network.delete_security_group(group.id)


def graph_edges(text: str) -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]]]:
    """The checkpoint's resource graph: nodes (type, id) by key, and (parent, child) edges
    as ``type#id`` pairs."""
    nodes, adjacency = json.loads(text)
    key = {sid: f"{packed[0]}#{packed[1]}" for sid, packed in nodes.items()}
    edges = {(key[parent], key[kid]) for parent, kids in adjacency for kid in kids}
    return key, edges


# --------------------------------------------------------------------------- the test


def test_server_with_image_volume_and_network(karbor: ServerKarbor,
                                              openstack_cloud: OpenStackCloud,
                                              compute_cloud: ComputeCloud):  # noqa: F811
    srv, ks = karbor, karbor.keystone
    admin = ks.admin
    conn = sdk(ks, admin)
    scene = Scenario(conn, openstack_cloud, compute_cloud)
    t0 = time.monotonic()
    scene.build()
    build_s = time.monotonic() - t0
    server, volume, image, network = scene.server, scene.volume, scene.image, scene.network
    project = admin.project_id
    assert [p.network_id for p in scene.ports(server.id)] == [network.id]

    # what Karbor offers for this cloud
    assert PROVIDER in column(srv.ok(admin, "provider-list"), "Id")
    schema = as_json(props(srv.ok(admin, "provider-show", PROVIDER))["extended_info_schema"])
    assert {SERVER, VOLUME, IMAGE, NETWORK} <= set(schema["restore_schema"])
    assert "restore_flavor_id" in schema["restore_schema"][SERVER]["properties"]
    assert server.id in column(srv.ok(admin, "protectable-list-instances", SERVER), "Id")

    # plan: the server alone; its dependencies come with it
    plan = props(srv.ok(admin, "plan-create", "server plan", PROVIDER,
                        f"{server.id}={SERVER}=karbor-vm"))
    t1 = time.monotonic()
    created = props(srv.ok(admin, "checkpoint-create", PROVIDER, plan["id"]))
    wait_for(lambda: checkpoint_status(srv, admin, created["id"]), {"available", "error"},
             timeout=OP_TIMEOUT, interval=1, what="checkpoint")
    protect_s = time.monotonic() - t1
    cp_id = created["id"]
    shown = props(srv.ok(admin, "checkpoint-show", PROVIDER, cp_id))
    assert shown["status"] == "available", (shown, srv.log()[-6000:])
    nodes, edges = graph_edges(shown["resource_graph"])
    server_key = f"{SERVER}#{server.id}"
    assert {(server_key, f"{VOLUME}#{volume.id}"), (server_key, f"{IMAGE}#{image.id}"),
            (server_key, f"{NETWORK}#{project}")} <= edges, edges
    assert set(nodes.values()) == {server_key, f"{VOLUME}#{volume.id}", f"{IMAGE}#{image.id}",
                                   f"{NETWORK}#{project}"}, nodes
    backups = [b for b in conn.block_storage.backups(details=True)
               if b.volume_id == volume.id]
    assert [b.status for b in backups] == ["available"], backups

    # verification: every plugin checks its part (the backup, the image's manifest, ...)
    verification = props(srv.ok(admin, "verification-create", PROVIDER, cp_id))
    wait_for(lambda: record(srv, admin, f"verifications/{verification['id']}")["status"],
             {"success", "fail"}, timeout=OP_TIMEOUT, interval=1, what="verification")
    verified = record(srv, admin, f"verifications/{verification['id']}")
    assert verified["status"] == "success", (verified, srv.log()[-6000:])
    assert _dict(verified["resources_status"]) == {key: "available" for key in nodes.values()}

    # the originals go away: server, volume, image, network, subnet, group
    scene.delete_server(server.id)
    scene.delete_volume(volume.id)
    conn.image.delete_image(image.id)
    scene.delete_network_topology()
    assert conn.network.find_network("karbor-net") is None

    t2 = time.monotonic()
    done = restore(srv, admin, cp_id, {SERVER: {"restore_name": "karbor-vm-restored"}})
    restore_s = time.monotonic() - t2
    assert done["status"] == "success", (done, srv.log()[-6000:])
    statuses = _dict(done["resources_status"])
    [new_server_id] = restored_ids(done, SERVER)
    assert statuses[f"{SERVER}#{new_server_id}"] == "available", statuses
    assert new_server_id != server.id
    new_server = conn.compute.get_server(new_server_id)
    assert new_server.status == "ACTIVE", new_server
    assert new_server.name == "karbor-vm-restored"
    assert new_server.flavor["original_name"] == "karbor.tiny", new_server.flavor

    # on the recreated network, with the recreated security group
    new_net = conn.network.find_network("karbor-net")
    assert new_net is not None and new_net.id != network.id
    assert new_net.provider_network_type == "flat"
    assert new_net.provider_physical_network == PHYSNET
    [new_subnet] = list(conn.network.subnets(network_id=new_net.id))
    assert new_subnet.cidr == "10.42.0.0/24"
    [port] = scene.ports(new_server_id)
    assert port.network_id == new_net.id
    assert port.fixed_ips[0]["subnet_id"] == new_subnet.id
    new_group = conn.network.find_security_group("karbor-ssh",
                                                  project_id=conn.current_project_id)
    assert new_group is not None and new_group.id != scene.group.id
    assert new_group.id in port.security_group_ids
    assert {g["name"] for g in new_server.security_groups} == {"karbor-ssh"}
    assert any(r["direction"] == "ingress" and r["protocol"] == "tcp"
               and r["port_range_min"] == 22 and r["remote_ip_prefix"] == "0.0.0.0/0"
               for r in new_group.security_group_rules), new_group.security_group_rules

    # booted from the restored image, which holds the original's bytes
    new_image_id = new_server.image["id"]
    assert new_image_id != image.id
    new_image = conn.image.get_image(new_image_id)
    assert new_image.status == "active" and new_image.checksum == scene.image_md5, new_image
    assert restored_ids(done, IMAGE) == [new_image_id]

    # a new volume, attached to the new server, holding the pattern
    [new_volume_id] = restored_ids(done, VOLUME)
    assert new_volume_id != volume.id
    new_volume = conn.block_storage.get_volume(new_volume_id)
    assert new_volume.status == "in-use", new_volume
    assert [a["server_id"] for a in new_volume.attachments] == [new_server_id]
    attached = [a.volume_id for a in conn.compute.volume_attachments(new_server_id)]
    assert attached == [new_volume_id]
    assert holds_pattern(openstack_cloud.volume_file(new_volume_id), scene.pattern), \
        "the restored volume does not hold the data of the original"

    # clean the restored copies away (a flat physnet carries one network)
    scene.delete_server(new_server_id)
    scene.delete_volume(new_volume_id)
    conn.image.delete_image(new_image_id)
    scene.delete_network_topology()

    # failure path: a flavor that does not exist; the server plugin checks it before any
    # child is restored, so nothing at all is made
    def inventory() -> dict[str, set[str]]:
        return {"servers": {s.id for s in conn.compute.servers()},
                "volumes": {v.id for v in conn.block_storage.volumes()},
                "images": {i.id for i in conn.image.images()},
                "networks": {n.id for n in conn.network.networks()},
                "groups": {g.id for g in conn.network.security_groups()}}
    before = inventory()
    failed = restore(srv, admin, cp_id, {SERVER: {"restore_flavor_id": "no-such-flavor"}})
    assert failed["status"] == "fail", failed
    reasons = _dict(failed.get("resources_reason"))
    server_reasons = [v for k, v in reasons.items() if k.startswith(SERVER + "#")]
    assert server_reasons and "no-such-flavor" in server_reasons[0], reasons
    assert "flavor" in server_reasons[0].lower(), reasons
    logs = srv.request("GET", "operation_logs", account=admin,
                       params={"restore_id": failed["id"]}).json()["operation_logs"]
    assert any("no-such-flavor" in (log["error_info"] or "") for log in logs), logs
    assert restored_ids(failed, VOLUME) == restored_ids(failed, IMAGE) == [], failed
    assert inventory() == before, "the failed restore left something behind"

    # deleting the checkpoint deletes its Cinder backup
    srv.ok(admin, "checkpoint-delete", PROVIDER, cp_id)
    wait_for(lambda: checkpoint_status(srv, admin, cp_id), {"gone", "deleted"},
             timeout=OP_TIMEOUT, interval=1, what="checkpoint deleted")
    wait_for(lambda: str(len([b for b in conn.block_storage.backups()
                              if b.volume_id == volume.id])), {"0"},
             timeout=OP_TIMEOUT, interval=1, what="backup deleted")
    print(f"\ncompute tier: {compute_timings}\nbuild {build_s:.1f} s, protect {protect_s:.1f} s,"
          f" restore {restore_s:.1f} s")
