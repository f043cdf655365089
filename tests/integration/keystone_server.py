"""A real Keystone (keystone 30.0.0 from PyPI) on a free 127.0.0.1 port, for integration tests.

* ``ensure_venv()`` installs Keystone and gunicorn into ``.state/keystone-venv`` once, pinned by
  ``keystone-constraints.txt`` beside this file (a re-install happens when the pins change);
  a file lock keeps parallel test runs from installing at the same time.
* ``KeystoneServer`` sets up SQLite + fernet keys, bootstraps ``admin``/``admin`` (project
  ``admin``, region ``RegionOne``, identity endpoints on its own port), serves it with
  gunicorn and stops it with SIGTERM.  ``provision_karbor()`` then creates what Karbor needs:
  the ``service`` project with the ``karbor`` service user (admin role), the ``demo`` and
  ``other`` projects with their users (member role) and the ``data-protect`` service with its
  endpoints.

Everything talks REST to Keystone with ``requests``: no OpenStack CLI (seconds per call).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.functional._server import free_port
from tests.integration import venvs

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".state"
VENV = STATE / "keystone-venv"
CONSTRAINTS = Path(__file__).with_name("keystone-constraints.txt")
REQUIREMENTS = ("keystone==30.0.0", "gunicorn")
INSTALL_TIMEOUT = 900
STEP_TIMEOUT = 120
START_TIMEOUT = 60
ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = "karbor-secret"
USER_PASSWORD = "demo-secret"
REGION = "RegionOne"
WSGI_WRAPPER = """\
import sys
sys.argv = sys.argv[:1]  # oslo.config must not parse gunicorn's arguments
from keystone.server.wsgi import initialize_public_application
application = initialize_public_application()
"""


def ensure_venv() -> Path:
    """The venv holding Keystone, installed on first use (about 30 s with a warm pip cache)."""
    return venvs.ensure_venv(VENV, REQUIREMENTS, constraints=CONSTRAINTS,
                             executables=("keystone-manage", "gunicorn"), what="Keystone")


@dataclass
class Account:
    """Credentials of one Keystone user in one project, and their ids."""

    username: str
    password: str
    project_name: str
    user_id: str = ""
    project_id: str = ""


class KeystoneServer:
    def __init__(self, root: Path | None = None) -> None:
        self.venv = ensure_venv()
        self.root = root or Path(tempfile.mkdtemp(prefix="karbor-keystone-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.v3 = self.url + "/v3"
        self.conf = self.root / "keystone.conf"
        self.log_file = self.root / "keystone.log"
        self.process: subprocess.Popen | None = None
        self.http = requests.Session()
        self._admin_token: str | None = None
        self.admin = Account("admin", ADMIN_PASSWORD, "admin")
        self.karbor = Account("karbor", SERVICE_PASSWORD, "service")
        self.demo = Account("demo", USER_PASSWORD, "demo")
        self.other = Account("other", USER_PASSWORD, "other")

    # -- lifecycle
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_KEYSTONE_CONFIG_FILES"] = str(self.conf)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    def _manage(self, *args: str) -> None:
        cmd = [str(self.venv / "bin" / "keystone-manage"), "--config-file", str(self.conf),
               *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                              env=self._env(), cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"keystone-manage {args[0]} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

    def start(self) -> None:
        data = self.root / "data"
        for sub in ("fernet-keys", "credential-keys"):
            (data / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(data / sub, 0o700)
        self.conf.write_text(
            "[DEFAULT]\n"
            f"log_file = {self.root / 'keystone-app.log'}\n"
            "[database]\n"
            f"connection = sqlite:///{data / 'keystone.db'}\n"
            "[token]\nprovider = fernet\n"
            f"[fernet_tokens]\nkey_repository = {data / 'fernet-keys'}\n"
            f"[fernet_receipts]\nkey_repository = {data / 'fernet-keys'}\n"
            f"[credential]\nkey_repository = {data / 'credential-keys'}\n"
            "[oslo_policy]\nenforce_new_defaults = false\nenforce_scope = false\n"
            # cheap password hashing: every user and token of these tests hashes one
            "[identity]\npassword_hash_rounds = 4\n")
        self._manage("db_sync")
        # What fernet_setup / credential_setup write, without two more keystone-manage starts:
        # key 0 is the staged key, the highest number the primary one.
        for sub in ("fernet-keys", "credential-keys"):
            for index in ("0", "1"):
                key = data / sub / index
                key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
                os.chmod(key, 0o600)
        self._manage("bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                     "--bootstrap-admin-url", self.v3 + "/",
                     "--bootstrap-internal-url", self.v3 + "/",
                     "--bootstrap-public-url", self.v3 + "/",
                     "--bootstrap-region-id", REGION)
        (self.root / "keystone_wsgi.py").write_text(WSGI_WRAPPER)
        cmd = [str(self.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
               "--workers", "1", "--threads", "8", "--timeout", "120",
               "--pythonpath", str(self.root), "keystone_wsgi:application"]
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env=self._env(), cwd=self.root)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Keystone exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            with contextlib.suppress(requests.RequestException):
                if self.http.get(self.v3, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Keystone did not answer within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> int | None:
        self.http.close()
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for path in (self.log_file, self.root / "keystone-app.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace")[-6000:])
        return "\n".join(parts)

    # -- REST
    def token(self, account: Account, *, project_scoped: bool = True) -> tuple[str, dict]:
        """A new token for ``account``: (token id, token body)."""
        auth: dict = {"identity": {"methods": ["password"], "password": {"user": {
            "name": account.username, "domain": {"id": "default"},
            "password": account.password}}}}
        if project_scoped:
            auth["scope"] = {"project": {"name": account.project_name,
                                         "domain": {"id": "default"}}}
        resp = self.http.post(self.v3 + "/auth/tokens", json={"auth": auth}, timeout=30)
        resp.raise_for_status()
        return resp.headers["X-Subject-Token"], resp.json()

    def request(self, method: str, path: str, *, token: str | None = None,
                expected: tuple[int, ...] = (200, 201, 204), **kw) -> requests.Response:
        if token is None:
            if self._admin_token is None:
                self._admin_token = self.token(self.admin)[0]
            token = self._admin_token
        resp = self.http.request(method, self.v3 + path, headers={"X-Auth-Token": token},
                                 timeout=30, **kw)
        if expected and resp.status_code not in expected:
            raise AssertionError(f"Keystone {method} {path} -> {resp.status_code}: {resp.text}")
        return resp

    def _find(self, collection: str, name: str) -> dict | None:
        found = self.request("GET", f"/{collection}", params={"name": name}).json()[collection]
        return found[0] if found else None

    def _ensure(self, collection: str, key: str, name: str, body: dict) -> dict:
        return self._find(collection, name) or \
            self.request("POST", f"/{collection}", json={key: body}).json()[key]

    def provision_karbor(self, karbor_port: int) -> None:
        """Projects, users, roles and the ``data-protect`` catalog entry Karbor needs."""
        roles = {name: self._ensure("roles", "role", name, {"name": name})["id"]
                 for name in ("admin", "member", "reader")}
        admin_body = self.token(self.admin)[1]["token"]
        self.admin.user_id = admin_body["user"]["id"]
        self.admin.project_id = admin_body["project"]["id"]
        for account, role in ((self.karbor, "admin"), (self.demo, "member"),
                              (self.other, "member")):
            project = self._ensure("projects", "project", account.project_name,
                                   {"name": account.project_name, "domain_id": "default"})
            user = self._ensure("users", "user", account.username,
                                {"name": account.username, "password": account.password,
                                 "domain_id": "default", "default_project_id": project["id"]})
            self.request("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/"
                                f"{roles[role]}")
            account.user_id, account.project_id = user["id"], project["id"]
        service = self._ensure("services", "service", "karbor",
                               {"name": "karbor", "type": "data-protect",
                                "description": "Application Data Protection"})
        url = f"http://127.0.0.1:{karbor_port}/v1/$(project_id)s"
        for interface in ("public", "internal", "admin"):
            self.request("POST", "/endpoints", json={"endpoint": {
                "service_id": service["id"], "interface": interface, "url": url,
                "region_id": REGION}})

    def get_trust(self, trust_id: str, token: str) -> requests.Response:
        return self.request("GET", f"/OS-TRUST/trusts/{trust_id}", token=token, expected=())

