"""A real Keystone + Cinder on 127.0.0.1 for the OpenStack tier of the integration tests.

What runs (all on free loopback ports, all under one temporary directory, all stopped by
:meth:`OpenStackCloud.stop`):

* Keystone 30.0.0 -- ``tests/integration/keystone_server.py`` (SQLite, fernet, gunicorn);
* MariaDB and RabbitMQ from Debian's packages (installed with apt-get on first use), started
  by hand for Cinder (its services share a database and talk over AMQP);
* Cinder 29.0.0 from PyPI (``.state/cinder-venv``, pinned by ``constraints.txt`` beside this
  file): cinder-api, cinder-scheduler, cinder-volume with the real NFS driver and
  cinder-backup with the posix backup driver.  This kernel has no NFS client, device-mapper
  or configfs, so the NFS "share" is a local directory bind-mounted where os-brick expects
  the share to be mounted: every volume is a (sparse) file ``volume-<id>`` in
  :attr:`OpenStackCloud.export`, snapshots are qcow2 overlays made by qemu-img and backups
  are real chunked, compressed backups on disk.  No Nova, Glance, Swift or Neutron.

Needs root (bind mount, privsep).  Adapted from the shared ``openstack-local`` recipe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.functional._server import free_port
from tests.integration import keystone_server, venvs
from tests.integration.keystone_server import REGION, Account, KeystoneServer

REPO = Path(__file__).resolve().parents[3]
STATE = REPO / ".state"
CINDER_VENV = STATE / "cinder-venv"
CONSTRAINTS = Path(__file__).with_name("constraints.txt")
CINDER_REQUIREMENTS = ("cinder==29.0.0", "PyMySQL")
APT_PACKAGES = ("rabbitmq-server", "mariadb-server", "qemu-utils", "nfs-common")
APT_BINARIES = ("/usr/sbin/mariadbd", "/usr/lib/rabbitmq/bin/rabbitmq-server",
                "/usr/bin/qemu-img", "/usr/sbin/mount.nfs")
DB_PASSWORD = "dbpass"
CINDER_PASSWORD = "cinder-secret"
START_TIMEOUT = 180
SUDO_SHIM = """#!/bin/bash
# cinder runs 'sudo cinder-rootwrap CONF cmd...': we are root, so run cmd itself
[ "${1:-}" = "-E" ] && shift
case "$(basename "${1:-}")" in *-rootwrap) shift 2;; esac
exec "$@"
"""


class CloudError(RuntimeError):
    pass


def ensure_packages() -> None:
    """RabbitMQ, MariaDB, qemu-img and mount.nfs from Debian, installed once."""
    if all(os.path.exists(b) for b in APT_BINARIES):
        return
    if os.geteuid() != 0:
        raise CloudError(f"the OpenStack tier needs root to install {' '.join(APT_PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0 and cmd[1] == "install":
            raise CloudError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-2000:]}")


def ensure_cinder_venv() -> Path:
    return venvs.ensure_venv(CINDER_VENV, CINDER_REQUIREMENTS, constraints=CONSTRAINTS,
                             executables=("cinder-api", "cinder-manage", "cinder-volume",
                                          "cinder-backup", "cinder-scheduler"),
                             what="Cinder", error=CloudError)


def _wait(check, timeout: float, what: str, process: subprocess.Popen | None = None,
          log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise CloudError(f"{what}: the process exited with {process.returncode}:\n"
                             f"{_tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.3)
    raise CloudError(f"{what} not ready within {timeout:g} s:\n{_tail(log)}")


def _tail(path: Path | None, size: int = 4000) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


class OpenStackCloud:
    """Keystone + MariaDB + RabbitMQ + Cinder (api, scheduler, volume, backup)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="karbor-openstack-"))
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.timings: dict[str, float] = {}
        self.keystone: KeystoneServer | None = None
        self.cinder_venv: Path | None = None
        self.mysql_port = free_port()
        self.amqp_port = free_port()
        self.cinder_port = free_port()
        self.export = self.root / "cinder" / "export"
        self.mount_point: Path | None = None
        self.cinder_url = f"http://127.0.0.1:{self.cinder_port}"
        self.admin_http = requests.Session()
        self._admin: tuple[str, str] | None = None

    # ------------------------------------------------------------------ lifecycle
    def _timed(self, name: str, fn) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t0, 1)

    def install(self) -> None:
        self._timed("install packages", ensure_packages)
        self._timed("install keystone", keystone_server.ensure_venv)
        self._timed("install cinder", lambda: setattr(self, "cinder_venv",
                                                      ensure_cinder_venv()))

    def start(self) -> None:
        if os.geteuid() != 0:
            raise CloudError("the OpenStack tier needs root (bind mount, privsep)")
        self.install()
        t0 = time.monotonic()
        # MariaDB and RabbitMQ start in the background while Keystone bootstraps
        self._start_mariadb()
        self._start_rabbitmq()
        self._timed("start keystone", self._start_keystone)
        self._timed("wait mariadb", self._wait_mariadb)
        self._timed("wait rabbitmq", self._wait_rabbitmq)
        self._timed("start cinder", self._start_cinder)
        self.timings["start total"] = round(time.monotonic() - t0, 1)

    def stop(self) -> None:
        self.admin_http.close()
        for name in reversed(list(self.processes)):
            self._stop_process(name)
        strays = self._our_strays()
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while strays and time.monotonic() < deadline:
            time.sleep(0.2)
            strays = self._our_strays()
        if self.keystone is not None:
            self.keystone.stop()
        if self.mount_point is not None:
            subprocess.run(["umount", str(self.mount_point)], capture_output=True, timeout=60)

    def cleanup(self) -> None:
        if self.mount_point is not None and os.path.ismount(self.mount_point):
            return  # never delete through a mount
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_process(self, name: str) -> None:
        proc = self.processes[name]
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        # children left in the group (privsep helpers, erlang's epmd)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _our_strays(self) -> list[int]:
        """Processes whose command line or environment names our directory: privsep
        helpers, and the epmd daemon RabbitMQ detaches (its HOME is ours)."""
        found = []
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if (marker in (entry / "cmdline").read_bytes()
                        or marker in (entry / "environ").read_bytes()):
                    found.append(int(entry.name))
        return found

    def _spawn(self, name: str, cmd: list[str], env: dict | None = None,
               cwd: Path | None = None) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    env=env or self._env(), cwd=cwd or self.root,
                                    start_new_session=True)
        self.processes[name] = proc
        return proc

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    def log(self, name: str) -> str:
        return _tail(self.logs / f"{name}.log", 8000)

    # ------------------------------------------------------------------ MariaDB
    def _start_mariadb(self) -> None:
        data = self.root / "mysql"
        data.mkdir(parents=True)
        proc = subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={data}",
                               "--auth-root-authentication-method=normal", "--skip-test-db"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise CloudError(f"mariadb-install-db failed:\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-2000:]}")
        self.mysql_socket = self.root / "mysqld.sock"
        self._spawn("mariadb", [
            "mariadbd", "--no-defaults", "--user=root", f"--datadir={data}",
            "--bind-address=127.0.0.1", f"--port={self.mysql_port}",
            f"--socket={self.mysql_socket}", f"--pid-file={self.root / 'mysqld.pid'}",
            "--skip-log-bin", "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=0", "--max-connections=300",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"])

    def _mysql(self, sql: str, password: bool = True) -> subprocess.CompletedProcess:
        cmd = ["mariadb", f"--socket={self.mysql_socket}", "-uroot"]
        if password:
            cmd.append(f"-p{DB_PASSWORD}")
        return subprocess.run([*cmd, "-e", sql], capture_output=True, text=True, timeout=60)

    def _wait_mariadb(self) -> None:
        _wait(lambda: self._mysql("SELECT 1", password=False).returncode == 0, 120,
              "MariaDB", self.processes["mariadb"], self.logs / "mariadb.log")
        for sql in (f"ALTER USER root@localhost IDENTIFIED BY '{DB_PASSWORD}'",
                    f"CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'",
                    "GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION",
                    "FLUSH PRIVILEGES"):
            proc = self._mysql(sql, password=sql.startswith("ALTER") is False)
            if proc.returncode != 0:
                raise CloudError(f"MariaDB: {sql}: {proc.stderr}")
        proc = self._mysql("CREATE DATABASE IF NOT EXISTS cinder")
        if proc.returncode != 0:
            raise CloudError(f"MariaDB: cannot create the cinder database: {proc.stderr}")

    @property
    def db_url(self) -> str:
        return (f"mysql+pymysql://root:{DB_PASSWORD}@127.0.0.1:{self.mysql_port}/cinder"
                "?charset=utf8mb4")

    # ------------------------------------------------------------------ RabbitMQ
    def _start_rabbitmq(self) -> None:
        r = self.root / "rabbitmq"
        for sub in ("home", "mnesia", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "enabled_plugins").write_text("[].\n")
        self.epmd_port = free_port()
        env = {k: v for k, v in self._env().items()
               if k not in ("LOGS", "ETC", "DATA", "RUN", "NODENAME", "HOME")}
        env.update({
            "HOME": str(r / "home"),                   # the erlang cookie lives here
            "RABBITMQ_NODENAME": f"karbor{self.amqp_port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),      # not the shared 4369
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface "
                                                   "{127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
            "RABBITMQ_LOG_BASE": str(r / "log"),
            "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
            "RABBITMQ_LOGS": "-",
        })
        self._spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env)

    def _amqp_ready(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=2) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(8)[:1] == b"\x01"  # connection.start frame

    def _wait_rabbitmq(self) -> None:
        _wait(self._amqp_ready, 180, "RabbitMQ", self.processes["rabbitmq"],
              self.logs / "rabbitmq.log")

    # ------------------------------------------------------------------ Keystone
    def _start_keystone(self) -> None:
        self.keystone = KeystoneServer(self.root / "keystone")
        self.keystone.start()
        ks = self.keystone
        roles = {name: ks._ensure("roles", "role", name, {"name": name})["id"]
                 for name in ("admin", "member", "reader", "service")}
        service_project = ks._ensure("projects", "project", "service",
                                     {"name": "service", "domain_id": "default"})
        self.cinder_account = Account("cinder", CINDER_PASSWORD, "service")
        user = ks._ensure("users", "user", "cinder",
                          {"name": "cinder", "password": CINDER_PASSWORD,
                           "domain_id": "default", "default_project_id": service_project["id"]})
        for role in ("admin", "service"):
            ks.request("PUT", f"/projects/{service_project['id']}/users/{user['id']}/roles/"
                              f"{roles[role]}")
        url = f"{self.cinder_url}/v3/$(project_id)s"
        for name, stype in (("cinderv3", "volumev3"), ("cinder", "block-storage")):
            service = ks._ensure("services", "service", name, {"name": name, "type": stype})
            for interface in ("public", "internal", "admin"):
                ks.request("POST", "/endpoints", json={"endpoint": {
                    "service_id": service["id"], "interface": interface, "url": url,
                    "region_id": REGION}})

    # ------------------------------------------------------------------ Cinder
    def _cinder_env(self) -> dict[str, str]:
        env = self._env()
        env["PATH"] = f"{self.root / 'shims'}:{self.cinder_venv / 'bin'}:{env.get('PATH', '')}"
        return env

    def _write_cinder_config(self) -> Path:
        assert self.keystone is not None and self.cinder_venv is not None
        c = self.root / "cinder"
        for sub in ("export", "mnt", "backup", "lock", "state", "etc"):
            (c / sub).mkdir(parents=True, exist_ok=True)
        etc = c / "etc"
        shutil.copy(self.cinder_venv / "etc" / "cinder" / "api-paste.ini", etc)
        (self.root / "shims").mkdir(exist_ok=True)
        sudo = self.root / "shims" / "sudo"
        sudo.write_text(SUDO_SHIM)
        sudo.chmod(0o755)
        self.share = f"127.0.0.1:{self.export}"
        (etc / "nfs_shares").write_text(self.share + "\n")
        (etc / "rootwrap.conf").write_text(
            "[DEFAULT]\n"
            f"filters_path={self.cinder_venv}/etc/cinder/rootwrap.d,"
            f"{self.cinder_venv}/etc/os-brick/rootwrap.d\n"
            f"exec_dirs={self.cinder_venv}/bin,/sbin,/usr/sbin,/bin,/usr/bin,/usr/local/bin\n"
            "use_syslog=False\n")
        ks = self.keystone
        auth = ("auth_type = password\nproject_domain_name = Default\n"
                "user_domain_name = Default\nproject_name = service\n"
                f"username = cinder\npassword = {CINDER_PASSWORD}\n")
        conf = etc / "cinder.conf"
        conf.write_text(
            "[DEFAULT]\n"
            f"transport_url = rabbit://guest:guest@127.0.0.1:{self.amqp_port}/\n"
            "auth_strategy = keystone\n"
            "my_ip = 127.0.0.1\n"
            "host = karbor-test\n"
            f"state_path = {c / 'state'}\n"
            "osapi_volume_listen = 127.0.0.1\n"
            f"osapi_volume_listen_port = {self.cinder_port}\n"
            "osapi_volume_workers = 1\n"
            f"api_paste_config = {etc / 'api-paste.ini'}\n"
            f"rootwrap_config = {etc / 'rootwrap.conf'}\n"
            "enabled_backends = nfs1\n"
            "backup_driver = cinder.backup.drivers.posix.PosixBackupDriver\n"
            f"backup_posix_path = {c / 'backup'}\n"
            "rpc_response_timeout = 120\n"
            "report_interval = 5\n"
            "periodic_interval = 10\n"
            "[database]\n"
            f"connection = {self.db_url}\n"
            "[oslo_concurrency]\n"
            f"lock_path = {c / 'lock'}\n"
            "[coordination]\n"
            f"backend_url = file://{c / 'lock'}\n"
            "[keystone_authtoken]\n"
            f"www_authenticate_uri = {ks.url}\n"
            f"auth_url = {ks.url}\n"
            + auth +
            "service_token_roles_required = true\n"
            "[nova]\n"
            f"auth_url = {ks.url}\n"
            + auth +
            "[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n"
            "[nfs1]\n"
            "volume_driver = cinder.volume.drivers.nfs.NfsDriver\n"
            "volume_backend_name = nfs1\n"
            f"nfs_shares_config = {etc / 'nfs_shares'}\n"
            f"nfs_mount_point_base = {c / 'mnt'}\n"
            "nfs_snapshot_support = true\n"
            "nfs_sparsed_volumes = true\n"
            "nas_secure_file_operations = false\n"
            "nas_secure_file_permissions = false\n")
        return conf

    def _bind_mount(self) -> None:
        """Make the export look NFS-mounted where os-brick looks for it."""
        python = str(self.cinder_venv / "bin" / "python")
        base = str(self.root / "cinder" / "mnt")
        code = ("from os_brick.remotefs.remotefs import RemoteFsClient as R; "
                f"print(R('nfs', 'sudo', nfs_mount_point_base={base!r})"
                f".get_mount_point({self.share!r}))")
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise CloudError(f"cannot compute the NFS mount point: {proc.stderr[-2000:]}")
        mp = Path(proc.stdout.strip())
        mp.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "--bind", str(self.export), str(mp)],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise CloudError(f"mount --bind {self.export} {mp} failed: {proc.stderr}")
        self.mount_point = mp

    def _start_cinder(self) -> None:
        conf = self._write_cinder_config()
        self._bind_mount()
        manage = subprocess.run([str(self.cinder_venv / "bin" / "cinder-manage"),
                                 "--config-file", str(conf), "db", "sync"],
                                capture_output=True, text=True, timeout=600,
                                env=self._cinder_env(), cwd=self.root)
        if manage.returncode != 0:
            raise CloudError(f"cinder-manage db sync failed:\n{manage.stdout[-3000:]}"
                             f"{manage.stderr[-3000:]}")
        for service in ("api", "scheduler", "volume", "backup"):
            self._spawn(f"cinder-{service}", [str(self.cinder_venv / "bin" / f"cinder-{service}"),
                                              "--config-file", str(conf)],
                        env=self._cinder_env())
        _wait(lambda: requests.get(self.cinder_url + "/", timeout=2).status_code < 500,
              START_TIMEOUT, "cinder-api", self.processes["cinder-api"],
              self.logs / "cinder-api.log")
        # volume and backup services report themselves up before volumes can be made
        def services_up() -> bool:
            for name in ("cinder-scheduler", "cinder-volume", "cinder-backup"):
                if self.processes[name].poll() is not None:
                    raise CloudError(f"{name} exited:\n{self.log(name)}")
            listed = self.admin_request("GET", "/os-services").json()["services"]
            up = {s["binary"] for s in listed if s["state"] == "up" and s["status"] == "enabled"}
            return {"cinder-scheduler", "cinder-volume", "cinder-backup"} <= up
        _wait(services_up, START_TIMEOUT, "the Cinder services",
              log=self.logs / "cinder-volume.log")
        # the NFS driver reports its capacity after its first periodic task
        def pool_ready() -> bool:
            pools = self.admin_request("GET", "/scheduler-stats/get_pools",
                                       params={"detail": "true"}).json()["pools"]
            return any((p.get("capabilities") or {}).get("free_capacity_gb") not in
                       (None, 0, "unknown") for p in pools)
        _wait(pool_ready, START_TIMEOUT, "the NFS pool", log=self.logs / "cinder-volume.log")

    # ------------------------------------------------------------------ faults
    def kill_cinder_service(self, service: str) -> None:
        """SIGKILL ``cinder-<service>`` (its whole process group), as a crash would."""
        proc = self.processes[f"cinder-{service}"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def restart_cinder_service(self, service: str) -> None:
        """Start ``cinder-<service>`` again with the config it had and wait until Cinder
        reports it up (on start, cinder-backup marks the backups it was making ``error``)."""
        name = f"cinder-{service}"
        conf = self.root / "cinder" / "etc" / "cinder.conf"
        self._spawn(name, [str(self.cinder_venv / "bin" / name), "--config-file", str(conf)],
                    env=self._cinder_env())

        def up() -> bool:
            if self.processes[name].poll() is not None:
                raise CloudError(f"{name} exited:\n{self.log(name)}")
            listed = self.admin_request("GET", "/os-services").json()["services"]
            return any(s["binary"] == name and s["state"] == "up" for s in listed)
        _wait(up, START_TIMEOUT, name, log=self.logs / f"{name}.log")

    # ------------------------------------------------------------------ REST helpers
    def token(self, account: Account) -> tuple[str, str]:
        """(token, project id) of ``account``."""
        assert self.keystone is not None
        token, body = self.keystone.token(account)
        return token, body["token"]["project"]["id"]

    def admin_request(self, method: str, path: str, **kw) -> requests.Response:
        if self._admin is None:
            self._admin = self.token(self.keystone.admin)
        return self.request(*self._admin, method, path, **kw)

    def request(self, token: str, project_id: str, method: str, path: str,
                expected: tuple[int, ...] = (200, 202, 204), **kw) -> requests.Response:
        resp = self.admin_http.request(method, f"{self.cinder_url}/v3/{project_id}{path}",
                                       headers={"X-Auth-Token": token,
                                                "OpenStack-API-Version": "volume 3.43"},
                                       timeout=60, **kw)
        if expected and resp.status_code not in expected:
            raise AssertionError(f"Cinder {method} {path} -> {resp.status_code}: {resp.text}")
        return resp

    def volume_file(self, volume_id: str) -> Path:
        return self.export / f"volume-{volume_id}"


if __name__ == "__main__":  # manual runs: start, print the timings, stop on Enter
    import sys

    cloud = OpenStackCloud()
    try:
        cloud.start()
        print("up:", cloud.timings, "keystone", cloud.keystone.url, "cinder", cloud.cinder_url,
              "root", cloud.root, flush=True)
        sys.stdin.readline()
    finally:
        cloud.stop()
        print("stopped", flush=True)
