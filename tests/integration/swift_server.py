"""A real OpenStack Swift all-in-one on 127.0.0.1 for the bank tests: Swift and S3 in one.

Swift (PyPI ``swift``, pinned below) is installed into its own virtualenv on first use
(``$KARBOR_SWIFT_VENV``, else ``.state/swift-venv`` in the repository; it needs no
Debian package: pyeclib's wheel bundles liberasurecode).  :class:`SwiftServer` then runs
an account, a container, an object and a proxy server on free ports with one device
directory and one replica, in a temporary directory:

* **tempauth** (no Keystone): user ``test:tester``, key ``testing``, auth v1 at
  ``auth_url``; tokens are Fernet tokens, so no memcached is needed;
* **s3api** in the proxy pipeline: access key ``test:tester``, secret ``testing``,
  path-style addressing, region ``us-east-1``, endpoint ``endpoint``.

``container_listing_limit`` is lowered to 1001 so that listings of a few thousand
objects take several pages in the Swift API too (s3api asks for ``max-keys + 1``).

Run ``python -m tests.integration.swift_server`` to start one by hand.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.integration import venvs

SWIFT_VERSION = "2.38.3"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".state" / "swift-venv"
ACCOUNT = "test"
USER = "test:tester"
KEY = "testing"
REGION = "us-east-1"
SERVERS = ("account", "container", "object")
INSTALL_TIMEOUT = 900
START_TIMEOUT = 60

_RING_SCRIPT = """
import sys
from swift.common.ring import RingBuilder
swift_dir = sys.argv[1]
for spec in sys.argv[2:]:
    name, port = spec.split(":")
    builder = RingBuilder(6, 1, 1)  # 64 partitions, 1 replica
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                     "port": int(port), "device": "d1", "weight": 100})
    builder.rebalance()
    builder.get_ring().save(f"{swift_dir}/{name}.ring.gz")
"""


# The proxy's cache (account/container info, normally memcached), kept in its own
# process: the servers run with workers = 0, so one dict serves every request.  Values
# round-trip through JSON as they would through memcached.
_CACHE_MODULE = """
import json
import time


class LocalCache:
    def __init__(self):
        self._items = {}

    def get(self, key, raise_on_error=False, **kwargs):
        item = self._items.get(key)
        if item is None:
            return None
        value, expires = item
        if expires and expires < time.time():
            self._items.pop(key, None)
            return None
        return json.loads(value)

    def set(self, key, value, serialize=True, time=0, min_compress_len=0,
            raise_on_error=False, **kwargs):
        import time as _time
        self._items[key] = (json.dumps(value), _time.time() + time if time else 0)

    def delete(self, key, server_key=None, **kwargs):
        self._items.pop(key, None)

    def incr(self, key, delta=1, time=0, **kwargs):
        value = int(self.get(key) or 0) + int(delta)
        self.set(key, max(value, 0), time=time)
        return max(value, 0)

    def decr(self, key, delta=1, time=0, **kwargs):
        return self.incr(key, -int(delta), time=time)

    def get_multi(self, keys, server_key=None, **kwargs):
        return [self.get(key) for key in keys]

    def set_multi(self, mapping, server_key=None, serialize=True, time=0, **kwargs):
        for key, value in mapping.items():
            self.set(key, value, time=time)


def filter_factory(global_conf, **local_conf):
    cache = LocalCache()

    def factory(app):
        def middleware(env, start_response):
            env["swift.cache"] = cache
            return app(env, start_response)
        return middleware
    return factory
"""


class SwiftError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------- installation


def ensure_swift_venv(venv: Path | None = None) -> Path:
    """The virtualenv holding Swift, created on first use; raises SwiftError if it can't be."""
    venv = Path(venv or os.environ.get("KARBOR_SWIFT_VENV") or DEFAULT_VENV)
    return venvs.ensure_venv(
        venv, [f"swift=={SWIFT_VERSION}"], executables=("swift-proxy-server",),
        check_import="swift.common.middleware.s3api.s3api, pyeclib.ec_iface, xattr",
        what="Swift", error=SwiftError)


# ------------------------------------------------------------------------------- server


def _fast_dir() -> str | None:
    """``/dev/shm`` when it takes user xattrs (Swift keeps object metadata in them): a
    tmpfs makes Swift's fsyncs free, ten times faster writes.  Else the default tmpdir."""
    shm = "/dev/shm"
    if not os.access(shm, os.W_OK):
        return None
    try:
        fd, probe = tempfile.mkstemp(dir=shm, prefix=".karbor-xattr-")
    except OSError:
        return None
    try:
        os.setxattr(probe, "user.karbor", b"1")
        return shm
    except OSError:
        return None
    finally:
        os.close(fd)
        os.unlink(probe)


def _conf(sections: dict[str, dict[str, object]]) -> str:
    return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
                   for name, values in sections.items())


class SwiftServer:
    """A Swift all-in-one (tempauth + s3api) in a temporary directory."""

    def __init__(self, venv: Path, root: Path | None = None):
        self.venv = Path(venv)
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="karbor-swift-", dir=_fast_dir()))
        self.ports: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen] = {}

    # what clients need
    @property
    def proxy_port(self) -> int:
        return self.ports["proxy"]

    @property
    def endpoint(self) -> str:
        """The proxy's base URL: the S3 endpoint."""
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def auth_url(self) -> str:
        return f"{self.endpoint}/auth/v1.0"

    @property
    def storage_url(self) -> str:
        return f"{self.endpoint}/v1/AUTH_{ACCOUNT}"

    user = USER
    key = KEY
    access_key = USER
    secret_key = KEY
    region = REGION

    def log(self, name: str | None = None) -> str:
        names = [name] if name else [*SERVERS, "proxy"]
        out = []
        for n in names:
            path = self.root / "logs" / f"{n}.log"
            if path.exists():
                out.append(f"--- {n} ---\n" + path.read_text(errors="replace")[-6000:])
        return "\n".join(out)

    # setup
    def _write_config(self) -> None:
        etc = self.root / "etc"
        shutil.rmtree(etc, ignore_errors=True)
        etc.mkdir(parents=True)
        (self.root / "node" / "d1").mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        (etc / "swift.conf").write_text(_conf({
            "swift-hash": {"swift_hash_path_suffix": "karbortests",
                           "swift_hash_path_prefix": "karbortests"},
            "storage-policy:0": {"name": "Policy-0", "default": "yes"},
            "swift-constraints": {"container_listing_limit": 1001},
        }))
        common = {
            "swift_dir": etc, "devices": self.root / "node", "mount_check": "false",
            "disable_fallocate": "true", "bind_ip": "127.0.0.1", "workers": 0,
            "user": getpass.getuser(), "log_level": "WARNING",
            # no syslog here: log lines go to a UDP port nobody reads, errors to the
            # process's own log file (--verbose)
            "log_udp_host": "127.0.0.1", "log_udp_port": free_port(),
        }
        for name in SERVERS:
            sections = {
                "DEFAULT": {**common, "bind_port": self.ports[name]},
                "pipeline:main": {"pipeline": f"{name}-server"},
                f"app:{name}-server": {"use": f"egg:swift#{name}"},
                f"{name}-replicator": {}, f"{name}-updater": {}, f"{name}-auditor": {},
            }
            if name == "container":
                sections["container-sync"] = {}
            (etc / f"{name}-server.conf").write_text(_conf(sections))
        fernet = base64.urlsafe_b64encode(os.urandom(32)).decode()
        (etc / "karbor_swift_cache.py").write_text(_CACHE_MODULE)
        pipeline = ("catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk "
                    "tempurl s3api tempauth copy slo dlo versioned_writes symlink "
                    "proxy-logging proxy-server")
        proxy = {
            "DEFAULT": {"swift_dir": etc, "bind_ip": "127.0.0.1",
                        "bind_port": self.ports["proxy"], "workers": 0,
                        "user": getpass.getuser(), "log_level": "WARNING",
                        "log_udp_host": "127.0.0.1", "log_udp_port": common["log_udp_port"]},
            "pipeline:main": {"pipeline": pipeline},
            "app:proxy-server": {"use": "egg:swift#proxy", "account_autocreate": "true"},
            "filter:tempauth": {"use": "egg:swift#tempauth",
                                f"user_{ACCOUNT}_tester": f"{KEY} .admin",
                                "fernet_key_k1": fernet, "active_fernet_key_id": "k1"},
            "filter:cache": {"paste.filter_factory": "karbor_swift_cache:filter_factory"},
            "filter:s3api": {"use": "egg:swift#s3api", "location": REGION},
            "filter:versioned_writes": {"use": "egg:swift#versioned_writes",
                                        "allow_versioned_writes": "true"},
        }
        for middleware in ("catch_errors", "gatekeeper", "healthcheck", "listing_formats",
                           "bulk", "tempurl", "copy", "slo", "dlo", "symlink"):
            proxy[f"filter:{middleware}"] = {"use": f"egg:swift#{middleware}"}
        proxy["filter:proxy-logging"] = {"use": "egg:swift#proxy_logging"}
        (etc / "proxy-server.conf").write_text(_conf(proxy))
        ring = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", _RING_SCRIPT, str(etc),
             *(f"{name}:{self.ports[name]}" for name in SERVERS)],
            capture_output=True, text=True, timeout=120)
        if ring.returncode != 0:
            raise SwiftError(f"cannot build the rings:\n{ring.stdout}\n{ring.stderr}")

    def _spawn(self, name: str) -> None:
        conf = self.root / "etc" / f"{name}-server.conf"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PYTHONPATH"] = str(self.root / "etc")  # the proxy's cache filter
        with open(self.root / "logs" / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(self.venv / "bin" / f"swift-{name}-server"), str(conf), "--verbose"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=self.root, start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "nothing tried"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise SwiftError(f"swift-{name}-server exited with {proc.returncode}:\n"
                                     f"{self.log(name)}")
            try:
                token, storage = self.authenticate()
                probe = urllib.request.Request(f"{storage}/karbor-readiness-probe",
                                               method="PUT", headers={"X-Auth-Token": token})
                urllib.request.urlopen(probe, timeout=5).close()
                urllib.request.urlopen(urllib.request.Request(
                    f"{storage}/karbor-readiness-probe", method="DELETE",
                    headers={"X-Auth-Token": token}), timeout=5).close()
                return
            except (OSError, KeyError) as exc:
                last = f"{exc.__class__.__name__}: {exc}"
                time.sleep(0.1)
        raise SwiftError(f"Swift did not become ready within {timeout}s ({last}):\n"
                         f"{self.log()}")

    def authenticate(self) -> tuple[str, str]:
        """``(token, storage_url)`` from tempauth (auth v1)."""
        req = urllib.request.Request(self.auth_url,
                                     headers={"X-Auth-User": USER, "X-Auth-Key": KEY})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.headers["X-Auth-Token"], resp.headers["X-Storage-Url"]

    def start(self, timeout: float = START_TIMEOUT, attempts: int = 3) -> None:
        error: Exception | None = None
        for _ in range(attempts):  # a port taken between free_port() and bind: retry
            self.ports = {name: free_port() for name in (*SERVERS, "proxy")}
            try:
                self._write_config()
                for name in (*SERVERS, "proxy"):
                    self._spawn(name)
                self._wait_ready(timeout)
                return
            except SwiftError as exc:
                error = exc
                self._stop_processes()
        raise SwiftError(f"cannot start Swift: {error}")

    def _stop_processes(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.processes = {}

    def stop(self) -> None:
        self._stop_processes()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def swift_server(venv: Path | None = None) -> Iterator[SwiftServer]:
    server = SwiftServer(ensure_swift_venv(venv))
    try:
        server.start()
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    with swift_server() as srv:
        print(f"Swift auth v1: {srv.auth_url} user {USER} key {KEY}")
        print(f"S3 endpoint:   {srv.endpoint} access {USER} secret {KEY} region {REGION}")
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
