"""Nova, Placement, Neutron and Glance next to the OpenStack tier's Keystone + Cinder.

:class:`ComputeCloud` composes with a started :class:`~tests.integration.openstack.cloud.
OpenStackCloud`: it uses that cloud's Keystone (service users, catalog), MariaDB (its own
databases) and RabbitMQ, and starts on free 127.0.0.1 ports, under ``<cloud root>/compute``:

* Placement 16.0.0 (gunicorn) and Nova 34.0.0: nova-api (gunicorn), nova-conductor,
  nova-scheduler and nova-compute with the fake virt driver (``FakeDriverWithoutFakeNodes``:
  servers go ACTIVE, volumes attach for real on the Cinder side, nothing boots), plus the
  assisted volume snapshots Cinder's NFS driver needs for attached volumes, done with
  qemu-img on the export's files (``NOVA_COMPUTE``);
  ``.state/nova-venv``, pinned by ``constraints-nova.txt`` beside this file;
* the Neutron 29.0.0 API (gunicorn; ML2, flat networks on any physnet, port security, no
  agents) with a ten-line mechanism driver that binds every port, as the shared recipe does;
  ``.state/neutron-venv``, pinned by ``constraints-neutron.txt``;
* Glance 33.0.0 (``tests/integration/glance_server.py``: SQLite, file store).

All four are registered in the Keystone catalog (``compute``, ``placement``, ``network``,
``image``). Their service users have the ``admin`` and ``service`` roles in the ``service``
project, and every service enforces ``service_token_roles_required`` as deployed.
:meth:`ComputeCloud.stop` stops everything it started (the cloud itself is stopped by its
own fixture). Adapted from ``/work/shared/openstack-local`` (start-nova.sh, start-neutron.sh).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.functional._server import free_port
from tests.integration import venvs
from tests.integration.glance_server import GlanceServer
from tests.integration.glance_server import ensure_venv as ensure_glance_venv
from tests.integration.keystone_server import REGION
from tests.integration.openstack.cloud import (
    DB_PASSWORD,
    STATE,
    CloudError,
    OpenStackCloud,
    _tail,
    _wait,
)

HERE = Path(__file__).resolve().parent
NOVA_VENV = STATE / "nova-venv"
NEUTRON_VENV = STATE / "neutron-venv"
NOVA_REQUIREMENTS = ("nova==34.0.0", "openstack-placement==16.0.0", "gunicorn", "PyMySQL")
NEUTRON_REQUIREMENTS = ("neutron==29.0.0", "gunicorn", "PyMySQL")
SERVICE_PASSWORD = "compute-secret"
START_TIMEOUT = 600     # nova-manage and neutron-db-manage on a loaded 2-core machine
STEP_TIMEOUT = 900
COMPUTE_HOST = "karbor-compute"
PHYSNET = "physnet1"

PLACEMENT_APP = """\
import sys
sys.argv = sys.argv[:1]  # oslo.config must not parse gunicorn's arguments
from placement.wsgi.api import application  # noqa: E402,F401
"""
NOVA_APP = """\
import sys
sys.argv = sys.argv[:1]
from nova.wsgi.osapi_compute import application  # noqa: E402,F401
"""
# As start-neutron.sh: import every model first (neutron 29 maps backrefs that only the l3/dvr
# plugins import), then replace the ML2 'test' mechanism driver (an entry point neutron
# ships) with one that binds any port on any host -- there are no agents here.
NEUTRON_APP = """\
import sys
sys.argv = sys.argv[:1]
from neutron.db.migration.models import head  # noqa: E402,F401
import sqlalchemy.orm  # noqa: E402
sqlalchemy.orm.configure_mappers()
from neutron_lib.api.definitions import portbindings  # noqa: E402
from neutron_lib.plugins.ml2 import api as ml2_api  # noqa: E402
from neutron.tests.unit.plugins.ml2.drivers import mechanism_test  # noqa: E402


class LoopbackBindDriver(ml2_api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        segment = context.segments_to_bind[0]
        context.set_binding(segment[ml2_api.ID], portbindings.VIF_TYPE_OVS,
                            {portbindings.CAP_PORT_FILTER: False})


mechanism_test.TestMechanismDriver = LoopbackBindDriver
from neutron.wsgi.api import application  # noqa: E402,F401
"""
# nova-compute with two more methods on the fake driver: the assisted volume snapshots that
# Cinder's NFS driver asks Nova for when the volume is attached (os-assisted-volume-snapshots).
# Libvirt points the guest at the overlay Cinder made (create) or block-rebases/commits the
# qcow2 chain (delete), then reports to Cinder; here qemu-img does the same to the files of
# the export (the guest never runs, so nothing else writes to them).
NOVA_COMPUTE = """\
import json
import os
import subprocess
import sys

from nova.cmd import compute as cmd  # first: nova.cmd sets up the process
from nova.virt import fake
from nova.volume import cinder

EXPORT = os.environ["KARBOR_TEST_NFS_EXPORT"]


def _qemu_img(*args):
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"qemu-img {args}: {proc.stderr}")
    return proc.stdout


def _path(name):
    return os.path.join(EXPORT, name)


def _format(name):
    return json.loads(_qemu_img("info", "--output=json", _path(name)))["format"]


def volume_snapshot_create(self, context, instance, volume_id, create_info):
    # Cinder already made create_info["new_file"] over the active file: nothing to switch
    cinder.API().update_snapshot_status(context, create_info["snapshot_id"], "creating")


def volume_snapshot_delete(self, context, instance, volume_id, snapshot_id, delete_info):
    with open(_path(f"volume-{volume_id}.info")) as f:
        active = json.load(f)["active"]
    merge, target = delete_info.get("file_to_merge"), delete_info.get("merge_target_file")
    if target is None:
        # blockRebase: pull the base into the active file, backed by file_to_merge then
        if merge:
            _qemu_img("rebase", "-f", "qcow2", "-b", merge, "-F", _format(merge),
                      _path(active))
        else:
            _qemu_img("rebase", "-f", "qcow2", "-b", "", _path(active))
    else:
        # blockCommit: file_to_merge into its backing file, then whatever file was
        # backed by file_to_merge is backed by the target
        _qemu_img("commit", "-f", "qcow2", _path(merge))
        for name in os.listdir(EXPORT):
            if not name.startswith(f"volume-{volume_id}") or name.endswith(".info"):
                continue
            info = json.loads(_qemu_img("info", "--output=json", _path(name)))
            if os.path.basename(info.get("backing-filename") or "") == merge:
                _qemu_img("rebase", "-u", "-f", "qcow2", "-b", target,
                          "-F", _format(target), _path(name))
    cinder.API().update_snapshot_status(context, snapshot_id, "deleting")


fake.FakeDriver.volume_snapshot_create = volume_snapshot_create
fake.FakeDriver.volume_snapshot_delete = volume_snapshot_delete
sys.argv[0] = "nova-compute"
sys.exit(cmd.main())
"""


def ensure_nova_venv() -> Path:
    return venvs.ensure_venv(NOVA_VENV, NOVA_REQUIREMENTS,
                             constraints=HERE / "constraints-nova.txt",
                             executables=("nova-manage", "nova-compute", "placement-manage",
                                          "gunicorn"),
                             what="Nova and Placement", error=CloudError)


def ensure_neutron_venv() -> Path:
    return venvs.ensure_venv(NEUTRON_VENV, NEUTRON_REQUIREMENTS,
                             constraints=HERE / "constraints-neutron.txt",
                             executables=("neutron-db-manage", "gunicorn"),
                             what="Neutron", error=CloudError)


class ComputeCloud:
    """Placement + Nova (fake driver) + Neutron API + Glance on an :class:`OpenStackCloud`."""

    def __init__(self, cloud: OpenStackCloud) -> None:
        assert cloud.keystone is not None, "start the OpenStackCloud first"
        self.cloud = cloud
        self.keystone = cloud.keystone
        self.root = cloud.root / "compute"
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.timings: dict[str, float] = {}
        self.placement_port = free_port()
        self.nova_port = free_port()
        self.neutron_port = free_port()
        self.placement_url = f"http://127.0.0.1:{self.placement_port}"
        self.nova_url = f"http://127.0.0.1:{self.nova_port}/v2.1"
        self.neutron_url = f"http://127.0.0.1:{self.neutron_port}"
        self.glance: GlanceServer | None = None
        self.nova_venv: Path | None = None
        self.neutron_venv: Path | None = None
        self._token: tuple[str, float] | None = None

    # ------------------------------------------------------------------ lifecycle
    def _timed(self, name: str, fn):
        t0 = time.monotonic()
        result = fn()
        self.timings[name] = round(time.monotonic() - t0, 1)
        return result

    def install(self) -> None:
        # the three installs are independent: run them side by side
        with ThreadPoolExecutor(3) as pool:
            nova = pool.submit(self._timed, "install nova+placement", ensure_nova_venv)
            neutron = pool.submit(self._timed, "install neutron", ensure_neutron_venv)
            glance = pool.submit(self._timed, "install glance", ensure_glance_venv)
            self.nova_venv, self.neutron_venv = nova.result(), neutron.result()
            glance.result()

    def start(self) -> None:
        t0 = time.monotonic()
        self.install()
        t1 = time.monotonic()
        self._timed("keystone users + catalog", self._register)
        self._timed("databases", self._databases)
        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(self._timed, "start placement", self._start_placement),
                    pool.submit(self._timed, "start nova", self._start_nova),
                    pool.submit(self._timed, "start neutron", self._start_neutron),
                    pool.submit(self._timed, "start glance", self._start_glance)]
            errors = [job.exception() for job in jobs]
        for exc in errors:
            if exc is not None:
                raise exc
        self._timed("nova-compute ready", self._wait_compute)
        self.timings["start"] = round(time.monotonic() - t1, 1)
        self.timings["install + start"] = round(time.monotonic() - t0, 1)

    def stop(self) -> None:
        if self.glance is not None:
            self.glance.stop()
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)

    def log(self, name: str) -> str:
        if name == "glance":
            return self.glance.log() if self.glance is not None else ""
        return _tail(self.logs / f"{name}.log", 6000) + _tail(self.logs / f"{name}-app.log",
                                                              6000)

    def logs_summary(self, size: int = 1500) -> str:
        names = [*self.processes, "glance"]
        return "\n".join(f"--- {name}:\n{self.log(name)[-size:]}" for name in names)

    # ------------------------------------------------------------------ helpers
    def _env(self, venv: Path | None = None, **extra: str) -> dict[str, str]:
        env = self.cloud._env()
        if venv is not None:
            env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
        env.update(extra)
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=self.root, start_new_session=True)
        self.processes[name] = proc
        return proc

    def _run(self, what: str, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.logs / "setup.log", "ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                              env=env, cwd=self.root)
        with open(self.logs / "setup.log", "a") as out:
            out.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise CloudError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")

    def db_url(self, name: str) -> str:
        return (f"mysql+pymysql://root:{DB_PASSWORD}@127.0.0.1:{self.cloud.mysql_port}/{name}"
                "?charset=utf8mb4")

    def _auth(self, user: str) -> str:
        ks = self.keystone
        return (f"www_authenticate_uri = {ks.url}\n"
                f"auth_url = {ks.url}\n"
                "auth_type = password\n"
                "project_domain_name = Default\nuser_domain_name = Default\n"
                f"project_name = service\nusername = {user}\npassword = {SERVICE_PASSWORD}\n"
                f"region_name = {REGION}\n")

    def _authtoken(self, user: str) -> str:
        return ("[keystone_authtoken]\n" + self._auth(user)
                + "service_token_roles_required = true\n")

    # ------------------------------------------------------------------ Keystone, MariaDB
    def _register(self) -> None:
        ks = self.keystone
        project = ks._find("projects", "service")
        roles = {name: ks._find("roles", name)["id"] for name in ("admin", "service")}
        for name in ("nova", "placement", "neutron"):
            user = ks._ensure("users", "user", name,
                              {"name": name, "password": SERVICE_PASSWORD,
                               "domain_id": "default", "default_project_id": project["id"]})
            for role in roles.values():
                ks.request("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role}")
        for name, stype, url in (("nova", "compute", self.nova_url),
                                 ("placement", "placement", self.placement_url),
                                 ("neutron", "network", self.neutron_url)):
            service = ks._ensure("services", "service", name, {"name": name, "type": stype})
            for interface in ("public", "internal", "admin"):
                ks.request("POST", "/endpoints", json={"endpoint": {
                    "service_id": service["id"], "interface": interface, "url": url,
                    "region_id": REGION}})

    def _databases(self) -> None:
        for name in ("placement", "nova_api", "nova", "nova_cell0", "neutron"):
            proc = self.cloud._mysql(f"CREATE DATABASE IF NOT EXISTS {name}")
            if proc.returncode != 0:
                raise CloudError(f"MariaDB: cannot create the {name} database: {proc.stderr}")

    # ------------------------------------------------------------------ Placement
    def _start_placement(self) -> None:
        venv = self.nova_venv
        etc = self.root / "placement"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "placement.conf").write_text(
            "[DEFAULT]\n"
            f"log_file = {self.logs / 'placement-app.log'}\n"
            "[api]\nauth_strategy = keystone\n"
            f"[placement_database]\nconnection = {self.db_url('placement')}\n"
            + self._authtoken("placement") +
            "[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n")
        (self.root / "placement_app.py").write_text(PLACEMENT_APP)
        env = self._env(venv, OS_PLACEMENT_CONFIG_DIR=str(etc))
        self._run("placement-manage db sync",
                  [str(venv / "bin" / "placement-manage"), "--config-file",
                   str(etc / "placement.conf"), "db", "sync"], env)
        proc = self._spawn("placement", [
            str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.placement_port}",
            "--workers", "1", "--threads", "4", "--timeout", "120",
            "--pythonpath", str(self.root), "placement_app:application"], env)
        _wait(lambda: requests.get(self.placement_url + "/", timeout=5).status_code == 200,
              START_TIMEOUT, "Placement", proc, self.logs / "placement.log")

    # ------------------------------------------------------------------ Nova
    def _nova_common(self) -> str:
        data = self.root / "nova"
        return (
            "[DEFAULT]\n"
            f"transport_url = rabbit://guest:guest@127.0.0.1:{self.cloud.amqp_port}/\n"
            "compute_driver = fake.FakeDriverWithoutFakeNodes\n"
            "my_ip = 127.0.0.1\n"
            f"host = {COMPUTE_HOST}\n"
            f"state_path = {data}\n"
            f"instances_path = {data / 'instances'}\n"
            "rpc_response_timeout = 120\n"
            "report_interval = 5\n"
            "heal_instance_info_cache_interval = -1\n"
            f"[oslo_concurrency]\nlock_path = {data / 'lock'}\n"
            "[placement]\n" + self._auth("placement") +
            "[service_user]\nsend_service_user_token = true\n" + self._auth("nova") +
            "[neutron]\n" + self._auth("neutron") +
            f"[cinder]\nos_region_name = {REGION}\n" + self._auth("nova") +
            f"[glance]\nregion_name = {REGION}\n"
            "[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n")

    def _start_nova(self) -> None:
        venv = self.nova_venv
        etc = self.root / "nova-etc"
        etc.mkdir(parents=True, exist_ok=True)
        for sub in ("instances", "lock"):
            (self.root / "nova" / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(venv / "etc" / "nova" / "api-paste.ini", etc)
        conf = etc / "nova.conf"
        conf.write_text(
            self._nova_common()
            + "[api]\nauth_strategy = keystone\n"
            f"[wsgi]\napi_paste_config = {etc / 'api-paste.ini'}\n"
            f"[api_database]\nconnection = {self.db_url('nova_api')}\n"
            f"[database]\nconnection = {self.db_url('nova')}\n"
            + self._authtoken("nova") +
            # the scheduler maps the new compute host into cell1 every 2 s
            "[scheduler]\ndiscover_hosts_in_cells_interval = 2\nworkers = 1\n"
            "[conductor]\nworkers = 1\n")
        # nova-compute must not have database access: its own file, without [database]
        cpu_conf = etc / "nova-cpu.conf"
        cpu_conf.write_text(self._nova_common())
        (self.root / "nova_app.py").write_text(NOVA_APP)
        env = self._env(venv, OS_NOVA_CONFIG_DIR=str(etc))
        manage = [str(venv / "bin" / "nova-manage"), "--config-file", str(conf)]
        self._run("nova-manage api_db sync", [*manage, "api_db", "sync"], env)
        self._run("nova-manage cell_v2 map_cell0",
                  [*manage, "cell_v2", "map_cell0", "--database_connection",
                   self.db_url("nova_cell0")], env)
        self._run("nova-manage cell_v2 create_cell",
                  [*manage, "cell_v2", "create_cell", "--name", "cell1"], env)
        self._run("nova-manage db sync", [*manage, "db", "sync"], env)
        api = self._spawn("nova-api", [
            str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.nova_port}",
            "--workers", "1", "--threads", "4", "--timeout", "120",
            "--pythonpath", str(self.root), "nova_app:application"], env)
        for service in ("conductor", "scheduler"):
            self._spawn(f"nova-{service}", [str(venv / "bin" / f"nova-{service}"),
                                            "--config-file", str(conf)], env)
        (self.root / "nova_compute.py").write_text(NOVA_COMPUTE)
        self._spawn("nova-compute", [str(venv / "bin" / "python"),
                                     str(self.root / "nova_compute.py"),
                                     "--config-file", str(cpu_conf)],
                    dict(env, KARBOR_TEST_NFS_EXPORT=str(self.cloud.export)))
        _wait(lambda: requests.get(self.nova_url, timeout=5).status_code < 500,
              START_TIMEOUT, "nova-api", api, self.logs / "nova-api.log")

    def _wait_compute(self) -> None:
        """nova-compute registered, up, and its resource provider in Placement."""
        def ready() -> bool:
            for name in ("nova-conductor", "nova-scheduler", "nova-compute"):
                if self.processes[name].poll() is not None:
                    raise CloudError(f"{name} exited:\n{self.log(name)}")
            services = self.nova("GET", "/os-services").json()["services"]
            up = {s["binary"] for s in services if s["state"] == "up"}
            if not {"nova-conductor", "nova-scheduler", "nova-compute"} <= up:
                return False
            hypervisors = self.nova("GET", "/os-hypervisors").json()["hypervisors"]
            if not hypervisors:
                return False
            providers = self.placement("GET", "/resource_providers").json()
            return bool(providers["resource_providers"])
        _wait(ready, START_TIMEOUT, "nova-compute", log=self.logs / "nova-compute.log")

    # ------------------------------------------------------------------ Neutron
    def _start_neutron(self) -> None:
        venv = self.neutron_venv
        etc = self.root / "neutron-etc"
        etc.mkdir(parents=True, exist_ok=True)
        (self.root / "neutron" / "lock").mkdir(parents=True, exist_ok=True)
        shutil.copy(venv / "etc" / "neutron" / "api-paste.ini", etc)
        conf = etc / "neutron.conf"
        conf.write_text(
            "[DEFAULT]\n"
            f"log_file = {self.logs / 'neutron-app.log'}\n"
            "core_plugin = ml2\nservice_plugins =\nauth_strategy = keystone\n"
            f"api_paste_config = {etc / 'api-paste.ini'}\n"
            "notify_nova_on_port_status_changes = false\n"
            "notify_nova_on_port_data_changes = false\n"
            f"transport_url = rabbit://guest:guest@127.0.0.1:{self.cloud.amqp_port}/\n"
            f"state_path = {self.root / 'neutron'}\n"
            f"[database]\nconnection = {self.db_url('neutron')}\n"
            + self._authtoken("neutron") +
            "[nova]\n" + self._auth("nova") +
            f"[oslo_concurrency]\nlock_path = {self.root / 'neutron' / 'lock'}\n"
            "[ml2]\ntype_drivers = flat\ntenant_network_types =\n"
            "mechanism_drivers = test\nextension_drivers = port_security\n"
            "[ml2_type_flat]\nflat_networks = *\n"
            "[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n")
        (self.root / "neutron_app.py").write_text(NEUTRON_APP)
        env = self._env(venv, OS_NEUTRON_CONFIG_DIR=str(etc), OS_NEUTRON_CONFIG_FILES=str(conf))
        self._run("neutron-db-manage upgrade heads",
                  [str(venv / "bin" / "neutron-db-manage"), "--config-file", str(conf),
                   "upgrade", "heads"], env)
        proc = self._spawn("neutron", [
            str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.neutron_port}",
            "--workers", "1", "--threads", "4", "--timeout", "120",
            "--pythonpath", str(self.root), "neutron_app:application"], env)
        _wait(lambda: requests.get(self.neutron_url + "/", timeout=5).status_code == 200,
              START_TIMEOUT, "Neutron", proc, self.logs / "neutron.log")

    # ------------------------------------------------------------------ Glance
    def _start_glance(self) -> None:
        # Glance's keystone_authtoken user is Karbor's service user (glance_server.py): it
        # exists before any request reaches Glance (the test provisions Karbor first).
        self.glance = GlanceServer(self.keystone, self.root / "glance")
        self.glance.start()

    # ------------------------------------------------------------------ REST helpers
    def _admin_token(self) -> str:
        if self._token is None or time.monotonic() - self._token[1] > 1800:
            self._token = (self.cloud.token(self.keystone.admin)[0], time.monotonic())
        return self._token[0]

    def nova(self, method: str, path: str, expected: tuple[int, ...] = (200, 201, 202, 204),
             **kw) -> requests.Response:
        resp = requests.request(method, self.nova_url + path, timeout=60,
                                headers={"X-Auth-Token": self._admin_token(),
                                         "OpenStack-API-Version": "compute 2.79"}, **kw)
        if expected and resp.status_code not in expected:
            raise CloudError(f"Nova {method} {path} -> {resp.status_code}: {resp.text}")
        return resp

    def placement(self, method: str, path: str, **kw) -> requests.Response:
        resp = requests.request(method, self.placement_url + path, timeout=60,
                                headers={"X-Auth-Token": self._admin_token(),
                                         "OpenStack-API-Version": "placement 1.10"}, **kw)
        resp.raise_for_status()
        return resp


if __name__ == "__main__":  # manual runs: start both, print the timings, stop on Enter
    import sys

    base = OpenStackCloud()
    compute = None
    try:
        base.start()
        compute = ComputeCloud(base)
        compute.start()
        print("up:", base.timings, compute.timings, "keystone", base.keystone.url, "nova",
              compute.nova_url, "neutron", compute.neutron_url, "glance", compute.glance.url,
              "root", base.root, flush=True)
        sys.stdin.readline()
    finally:
        if compute is not None:
            compute.stop()
        base.stop()
        print("stopped", flush=True)
