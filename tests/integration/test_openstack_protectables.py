"""OpenStack protectables (server, volume, image, network) in Keystone mode, real Keystone only.

What runs: a real Keystone (``keystone_server.py``) and ``karbor-server`` in Keystone mode,
driven by python-karborclient 2.1.0 in normal Keystone mode.  No Nova, Cinder, Glance or
Neutron runs here, so this checks what is observable without them: the four types are
registered with the original's parents (``dependent_types``), plan creation with the
project still works (the cloud plugins' failures are skipped during dependency expansion),
and instance calls answer with a clear 503 (service absent from the catalog, or its endpoint
unreachable) -- never a 500.

If the ``karbor.protectables`` entry points of the new plugins are not installed yet, they
are provided to the server process through a throw-away ``.dist-info`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import openstack.connection
import pytest

from tests.functional._cli import as_python, column, props, rows
from tests.functional.conftest import karborclient  # noqa: F401 (the client fixture)
from tests.integration.glance_server import GlanceServer
from tests.integration.keystone_server import REGION, Account
from tests.integration.test_keystone_mode import KeystoneKarbor, keystone  # noqa: F401

PLUGINS = "karbor.services.protection.protectable_plugins"
ENTRY_POINTS = {
    "server": f"{PLUGINS}.server:ServerProtectablePlugin",
    "volume": f"{PLUGINS}.volume:VolumeProtectablePlugin",
    "image": f"{PLUGINS}.image:ImageProtectablePlugin",
    "network": f"{PLUGINS}.network:NetworkProtectablePlugin",
}
PROJECT, SERVER, VOLUME, IMAGE, NETWORK = ("OS::Keystone::Project", "OS::Nova::Server",
                                          "OS::Cinder::Volume", "OS::Glance::Image",
                                          "OS::Neutron::Network")


def _entry_points_dir(tmp: Path) -> Path | None:
    installed = {ep.name for ep in metadata.entry_points(group="karbor.protectables")}
    if set(ENTRY_POINTS) <= installed:
        return None
    info = tmp / "karbor_openstack_protectables-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: karbor-openstack-"
                                   "protectables\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        "[karbor.protectables]\n"
        # sorted by name, as setuptools writes them
        + "".join(f"{name} = {ENTRY_POINTS[name]}\n" for name in sorted(ENTRY_POINTS)))
    return tmp


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def karbor_os(keystone, karborclient, tmp_path_factory) -> Iterator[KeystoneKarbor]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("karbor-openstack")
    srv = KeystoneKarbor(keystone, karborclient, tmp)
    keystone.provision_karbor(srv.port)
    # Cinder in the catalog, at an address where nothing listens; no Nova/Glance/Neutron.
    ks = keystone
    if not ks._find("services", "cinderv3"):
        service = ks._ensure("services", "service", "cinderv3",
                             {"name": "cinderv3", "type": "block-storage"})
        ks.request("POST", "/endpoints", json={"endpoint": {
            "service_id": service["id"], "interface": "public", "region_id": REGION,
            "url": f"http://127.0.0.1:{_closed_port()}/v3/$(project_id)s"}})
    extra = _entry_points_dir(tmp / "ep")
    saved = os.environ.get("PYTHONPATH")
    if extra is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra), saved) if p)
    try:
        srv.start()
    except Exception as exc:
        srv.stop()
        pytest.fail(f"cannot start karbor-server in Keystone mode: {exc}")
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    yield srv
    code = srv.stop()
    assert code == 0, f"karbor-server did not exit cleanly on SIGTERM ({code}):\n{srv.log()}"
    # 503s are logged with their cause by the API; nothing may be an unexpected error
    assert "unexpected error" not in srv.log(), srv.log()


def _types(text: str) -> list[str]:
    return as_python(props(text)["dependent_types"])


def test_openstack_protectables_without_the_services(karbor_os: KeystoneKarbor):
    srv, demo = karbor_os, karbor_os.keystone.demo

    listed = column(srv.ok(demo, "protectable-list"), "Protectable type")
    for resource_type in (PROJECT, SERVER, VOLUME, IMAGE, NETWORK):
        assert resource_type in listed, listed

    # the original's edges: server -> volume, image; project -> all four
    assert _types(srv.ok(demo, "protectable-show", SERVER)) == [VOLUME, IMAGE, NETWORK]
    project_deps = _types(srv.ok(demo, "protectable-show", PROJECT))
    assert {SERVER, VOLUME, IMAGE, NETWORK} <= set(project_deps), project_deps
    for leaf in (VOLUME, IMAGE, NETWORK):
        assert _types(srv.ok(demo, "protectable-show", leaf)) == []

    # Nova is not in the catalog: 503 saying so, never 500
    resp = srv.request("GET", f"protectables/{SERVER}/instances", account=demo)
    assert resp.status_code == 503, resp.text
    assert "not in the caller's catalog" in resp.text, resp.text
    resp = srv.request("GET", f"protectables/{SERVER}/instances/"
                              "1f0c2a36-0000-4000-8000-000000000000", account=demo)
    assert resp.status_code == 503, resp.text
    # Cinder is in the catalog but unreachable: 503 too
    resp = srv.request("GET", f"protectables/{VOLUME}/instances", account=demo)
    assert resp.status_code == 503, resp.text
    assert "Karbor cannot" in resp.text, resp.text

    # a plan of the project still works: its cloud dependents are skipped with a warning
    plan = props(srv.ok(demo, "plan-create", "os plan", "b766f37c-d011-4026-8228-28730d734a3f",
                        f"{demo.project_id}={PROJECT}={demo.project_name}"))
    assert plan["status"] == "suspended"


# --------------------------------------------------------------------------- with a real Glance


@pytest.fixture(scope="module")
def glance(karbor_os, tmp_path_factory) -> Iterator[GlanceServer]:
    try:
        server = GlanceServer(karbor_os.keystone, tmp_path_factory.mktemp("glance"))
    except Exception as exc:  # installation failed: say why, never skip
        pytest.fail(f"cannot install Glance: {exc}")
    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.fail(f"cannot start Glance: {exc}")
    yield server
    server.stop()


def _sdk(srv: KeystoneKarbor, account: Account) -> openstack.connection.Connection:
    ks = srv.keystone
    return openstack.connection.Connection(
        auth_url=ks.v3, username=account.username, password=account.password,
        project_name=account.project_name, user_domain_id="default",
        project_domain_id="default", region_name=REGION, interface="public")


def _wait_image(conn, image_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (current := conn.image.get_image(image_id).status) != status:
        assert time.monotonic() < deadline, f"image {image_id} is {current}, not {status}"
        time.sleep(0.5)


def test_glance_images_as_protectables(karbor_os: KeystoneKarbor, glance: GlanceServer):
    srv, ks = karbor_os, karbor_os.keystone
    demo, other = ks.demo, ks.other
    conn, admin = _sdk(srv, demo), _sdk(srv, ks.admin)
    image = conn.image.create_image(name="karbor-protectable-image", data=b"karbor" * 1000,
                                    disk_format="raw", container_format="bare",
                                    visibility="private")
    try:
        _wait_image(conn, image.id, "active")

        listed = rows(srv.ok(demo, "protectable-list-instances", IMAGE))
        assert image.id in [r["Id"] for r in listed], listed
        assert image.id not in column(srv.ok(other, "protectable-list-instances", IMAGE),
                                      "Id")
        # --parameters filter the listing on name and extra_info values
        def ids(*params: str) -> list[str]:
            out = srv.ok(demo, "protectable-list-instances", IMAGE, "--parameters", *params)
            return [r["Id"] for r in rows(out)]
        assert ids("name=karbor-protectable-image") == [image.id]
        assert image.id in ids("status=active")
        assert ids("name=no-such-image") == []
        shown = props(srv.ok(demo, "protectable-show-instance", IMAGE, image.id))
        assert shown["id"] == image.id and shown["name"] == "karbor-protectable-image"
        assert as_python(shown["extra_info"])["status"] == "active"

        # the project's dependents hold the image (owner match); the unreachable Cinder and
        # the missing Nova/Neutron are skipped
        project = props(srv.ok(demo, "protectable-show-instance", PROJECT, demo.project_id))
        assert image.id in project["dependent_resources"], project

        message, code = srv.fails(demo, "protectable-show-instance", IMAGE, str(uuid.uuid4()))
        assert code == 404, message

        # a deactivated image is not protectable: absent from the list, 409 on show
        admin.image.deactivate_image(image.id)
        _wait_image(conn, image.id, "deactivated")
        assert image.id not in column(srv.ok(demo, "protectable-list-instances", IMAGE), "Id")
        message, code = srv.fails(demo, "protectable-show-instance", IMAGE, image.id)
        assert code == 409, message
        admin.image.reactivate_image(image.id)
        _wait_image(conn, image.id, "active")

        # the client checks the instance before creating the plan
        plan = props(srv.ok(demo, "plan-create", "image plan",
                            "b766f37c-d011-4026-8228-28730d734a3f",
                            f"{image.id}={IMAGE}=karbor-protectable-image"))
        assert plan["status"] == "suspended"
        assert image.id in plan["resources"]
    finally:
        conn.image.delete_image(image.id, ignore_missing=True)
