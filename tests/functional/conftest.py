"""Fixtures of the functional tier: a real ``karbor-server`` over real HTTP.

* ``karborclient`` -- path of the unmodified python-karborclient 2.1.0 ``karbor`` CLI
  (``$KARBORCLIENT``, else ``.state/karborclient-venv``, created on first use).
* ``postgresql`` -- a throw-away PostgreSQL server from Debian's packages on a free
  127.0.0.1 port (trust auth); session scoped, started only when a test needs it.
* ``server`` -- ``karbor-server`` in noauth mode on a free port, once per database backend
  (``sqlite``, ``postgresql``); its teardown asserts a clean exit on SIGTERM.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import karbor
from tests.functional._server import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIENT = REPO / ".state" / "karborclient-venv" / "bin" / "karbor"
SERVER_EXECUTABLE = Path(sys.executable).parent / "karbor-server"
BUILTIN_PROVIDERS = Path(karbor.__file__).parent / "etc" / "providers.d"
SHUTDOWN_TIMEOUT = 15
START_TIMEOUT = 60
CLI_TIMEOUT = 60


def new_project_id() -> str:
    """Project ids are uuid-like hex strings (the quota API insists on uuid-like ids)."""
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- karborclient


def _client_works(path: Path) -> bool:
    try:
        proc = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                              timeout=CLI_TIMEOUT)
    except OSError:
        return False
    return proc.returncode == 0


@pytest.fixture(scope="session")
def karborclient() -> str:
    """The ``karbor`` executable of python-karborclient 2.1.0 (fails, never skips)."""
    configured = os.environ.get("KARBORCLIENT")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"KARBORCLIENT={configured} is not an executable file")
        return str(path)
    if DEFAULT_CLIENT.is_file() and os.access(DEFAULT_CLIENT, os.X_OK) \
            and _client_works(DEFAULT_CLIENT):
        return str(DEFAULT_CLIENT)
    venv = DEFAULT_CLIENT.parent.parent
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         "python-karborclient==2.1.0"],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"cannot install python-karborclient ({' '.join(step)}):\n"
                        f"{proc.stdout}\n{proc.stderr}")
    if not _client_works(DEFAULT_CLIENT):
        pytest.fail(f"{DEFAULT_CLIENT} does not run after installation")
    return str(DEFAULT_CLIENT)


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name)
                        if Path(p).parent.parent.name.isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    pytest.fail("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH); "
                "install Debian's postgresql package")


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory."""

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="karbor-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self._counter = 0

    def _cmd(self, *args: str) -> list[str]:
        if self.as_root:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True,
                              timeout=timeout, cwd=self.root)
        if proc.returncode != 0:
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{proc.stderr}\n{log}")

    def start(self) -> None:
        if self.as_root:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                                "/usr/sbin/nologin", "postgres"], check=True,
                               capture_output=True)
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                  str(self.logfile), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                          "-w", "-t", "30", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m",
                          "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database and return its SQLAlchemy URL."""
        import psycopg2

        if name is None:
            self._counter += 1
            name = f"karbor_{self._counter}_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("psycopg2 is missing (pip install psycopg2-binary)")
    pg = PostgresServer()
    try:
        pg.start()
    except Exception as exc:
        pg.stop()
        pytest.fail(f"cannot start PostgreSQL: {exc}")
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def postgresql(postgresql_server: PostgresServer) -> str:
    """SQLAlchemy URL of an empty ``karbor`` database on the private PostgreSQL server."""
    return postgresql_server.create_database("karbor")


# --------------------------------------------------------------------------- karbor-server


class KarborServer:
    """A running ``karbor-server`` plus helpers to talk to it."""

    def __init__(self, *, backend: str, db_url: str, client: str, tmpdir: Path) -> None:
        self.backend = backend
        self.db_url = db_url
        self.client = client
        self.tmpdir = tmpdir
        self.state_path = tmpdir / "state"
        self.config_file = tmpdir / "karbor.conf"
        self.log_file = tmpdir / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.project = new_project_id()
        self.user = "demo"
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()
        self.cli_calls = 0

    # -- lifecycle
    def write_config(self) -> None:
        self.state_path.mkdir(parents=True, exist_ok=True)
        # No provider_config_dir: a config file of one's own keeps the built-in providers.
        self.config_file.write_text(
            "[DEFAULT]\n"
            f"state_path = {self.state_path}\n"
            "osapi_karbor_listen = 127.0.0.1\n"
            f"osapi_karbor_listen_port = {self.port}\n"
            "auth_strategy = noauth\n"
            # fast schedules, so that scheduled operations can be watched firing
            "min_interval = 2\n"
            "trigger_poll_interval = 0.5\n"
            "\n[database]\n"
            f"connection = {self.db_url}\n")

    def start(self) -> None:
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                [str(SERVER_EXECUTABLE), "--config-file", str(self.config_file)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmpdir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"karbor-server exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            try:
                resp = self.session.get(self.base_url + "/", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.1)
                continue
            if resp.status_code == 300:
                return
            time.sleep(0.1)
        raise RuntimeError(f"karbor-server did not answer within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM; return the exit code, or None if it did not exit in time (then kill)."""
        self.session.close()
        if self.process is None:
            return None
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return None

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- clients
    def endpoint(self, project: str | None = None) -> str:
        return f"{self.base_url}/v1/{project or self.project}"

    def cli(self, *args: str, user: str | None = None, project: str | None = None,
            token: str | None = None, url_project: str | None = None,
            timeout: float = CLI_TIMEOUT) -> tuple[int, str, str]:
        """Run the karborclient CLI in no-client-auth mode; return (rc, stdout, stderr)."""
        project = project or self.project
        token = token or f"{user or self.user}:{project}"
        cmd = [self.client, "--os-no-client-auth",
               "--karbor-url", self.endpoint(url_project or project),
               "--os-auth-token", token, *args]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OS_", "KARBOR_", "ALL_TENANTS"))}
        self.cli_calls += 1
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        return proc.returncode, proc.stdout, proc.stderr

    def http(self, method: str, path: str, json: object = None, *, user: str | None = None,
             project: str | None = None, params: dict | None = None,
             headers: dict | None = None, timeout: float = 30) -> requests.Response:
        """HTTP request; a path without a leading ``/`` is relative to ``/v1/<project>/``."""
        project = project or self.project
        if path.startswith("/"):
            url = self.base_url + path
        else:
            url = f"{self.endpoint(project)}/{path}"
        hdrs = {"X-Auth-Token": f"{user or self.user}:{project}"}
        if headers:
            hdrs.update(headers)
        return self.session.request(method, url, json=json, params=params, headers=hdrs,
                                    timeout=timeout)


def _dump_log(server: KarborServer) -> str:
    tail = server.log().splitlines()[-80:]
    return "\n".join(tail)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, karborclient, tmp_path_factory) -> Iterator[KarborServer]:
    """A karbor-server per database backend; stopped with SIGTERM, must exit 0 in 15 s."""
    backend = request.param
    tmpdir = tmp_path_factory.mktemp(f"karbor-{backend}")
    if backend == "postgresql":
        pg: PostgresServer = request.getfixturevalue("postgresql_server")
        db_url = pg.create_database()
    else:
        db_url = f"sqlite:///{tmpdir / 'state' / 'karbor.sqlite'}"
    srv = KarborServer(backend=backend, db_url=db_url, client=karborclient, tmpdir=tmpdir)
    try:
        srv.start()
    except Exception as exc:
        srv.stop()
        pytest.fail(f"cannot start karbor-server ({backend}): {exc}")
    yield srv
    started = time.monotonic()
    code = srv.stop()
    elapsed = time.monotonic() - started
    assert code == 0, (f"karbor-server ({backend}) did not shut down cleanly on SIGTERM: "
                       f"exit code {code} after {elapsed:.1f}s\n{_dump_log(srv)}")
    assert "Traceback (most recent call last)" not in srv.log(), (
        f"karbor-server ({backend}) logged a traceback:\n{srv.log()}")


__all__ = ["KarborServer", "PostgresServer", "free_port", "new_project_id"]
