"""A real Glance API (glance 33.0.0 from PyPI: SQLite, file store, Keystone auth) for tests.

Installed into ``.state/glance-venv`` on first use (pinned by the shared recipe's
``constraints-venv.txt`` when present), started with gunicorn on a free port, registered in
the given Keystone's catalog (service type ``image``), stopped by :meth:`GlanceServer.stop`.
Its ``keystone_authtoken`` user is Karbor's service user of ``keystone_server.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.functional._server import free_port
from tests.integration import venvs
from tests.integration.keystone_server import REGION, KeystoneServer

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".state"
VENV = STATE / "glance-venv"
CONSTRAINTS = Path(__file__).with_name("openstack-constraints.txt")
REQUIREMENTS = ("glance==33.0.0", "gunicorn")
INSTALL_TIMEOUT = 900
STEP_TIMEOUT = 180
START_TIMEOUT = 90
WSGI_WRAPPER = """\
import sys
sys.argv = sys.argv[:1]  # oslo.config must not parse gunicorn's arguments
from glance.wsgi.api import application  # noqa: E402,F401
"""


def ensure_venv() -> Path:
    return venvs.ensure_venv(VENV, REQUIREMENTS, constraints=CONSTRAINTS,
                             executables=("glance-manage", "gunicorn"), what="Glance")


class GlanceServer:
    def __init__(self, keystone: KeystoneServer, root: Path) -> None:
        self.venv = ensure_venv()
        self.keystone = keystone
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = root / "glance.log"
        self.process: subprocess.Popen | None = None

    def _write_config(self) -> Path:
        ks, data = self.keystone, self.root / "data"
        for sub in ("images", "staging", "tasks"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        etc = self.root / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.venv / "etc" / "glance" / "glance-api-paste.ini", etc)
        conf = etc / "glance-api.conf"
        conf.write_text(
            "[DEFAULT]\n"
            f"log_file = {self.root / 'glance-app.log'}\n"
            "enabled_backends = fs:file\n"
            f"worker_self_reference_url = {self.url}\n"
            "[database]\n"
            f"connection = sqlite:///{self.root / 'glance.sqlite'}\n"
            "[glance_store]\ndefault_backend = fs\n"
            f"[fs]\nfilesystem_store_datadir = {data / 'images'}\n"
            f"[os_glance_staging_store]\nfilesystem_store_datadir = {data / 'staging'}\n"
            f"[os_glance_tasks_store]\nfilesystem_store_datadir = {data / 'tasks'}\n"
            "[keystone_authtoken]\n"
            f"www_authenticate_uri = {ks.url}\n"
            f"auth_url = {ks.url}\n"
            "auth_type = password\n"
            "project_domain_id = default\nuser_domain_id = default\n"
            f"project_name = {ks.karbor.project_name}\n"
            f"username = {ks.karbor.username}\npassword = {ks.karbor.password}\n"
            "[paste_deploy]\nflavor = keystone\n"
            f"config_file = {etc / 'glance-api-paste.ini'}\n"
            "[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n")
        (self.root / "glance_app.py").write_text(WSGI_WRAPPER)
        return etc

    def _env(self, etc: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_GLANCE_CONFIG_DIR"] = str(etc)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    def start(self) -> None:
        """Start Glance and add it to the catalog; ``keystone.provision_karbor`` ran first."""
        etc = self._write_config()
        env = self._env(etc)
        proc = subprocess.run([str(self.venv / "bin" / "glance-manage"), "--config-file",
                               str(etc / "glance-api.conf"), "db_sync"],
                              capture_output=True, text=True, timeout=STEP_TIMEOUT, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"glance-manage db_sync failed:\n{proc.stderr[-3000:]}")
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--threads", "4", "--timeout", "300",
                 "--pythonpath", str(self.root), "glance_app:application"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Glance exited ({self.process.returncode}):\n{self.log()}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Glance did not answer within {START_TIMEOUT}s:\n"
                                   f"{self.log()}")
            time.sleep(0.3)
        ks = self.keystone
        service = ks._ensure("services", "service", "glance", {"name": "glance", "type": "image"})
        for interface in ("public", "internal", "admin"):
            ks.request("POST", "/endpoints", json={"endpoint": {
                "service_id": service["id"], "interface": interface, "url": self.url,
                "region_id": REGION}})

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        parts = []
        for path in (self.log_file, self.root / "glance-app.log"):
            if path.is_file():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)
