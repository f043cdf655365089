"""Start a real ``karbor-server`` subprocess on a free local port (standalone test helper).

Usage::

    with karbor_server() as srv:
        requests.get(srv.url + "/v1/...")
        srv.db_url  # sqlite URL of its database, for white-box checks

The server runs in noauth mode with its state (SQLite database, file-system bank)
in a temporary directory and is stopped with SIGTERM on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import karbor

EXECUTABLE = Path(sys.executable).parent / "karbor-server"
BUILTIN_PROVIDERS = Path(karbor.__file__).parent / "etc" / "providers.d"
RESERVED_PORTS = {8799, 5432}  # Karbor's and PostgreSQL's defaults: maybe in use


@dataclass
class Server:
    url: str
    state_path: Path
    config_file: Path
    log_file: Path
    process: subprocess.Popen

    @property
    def db_path(self) -> Path:
        return self.state_path / "karbor.sqlite"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    """A port the kernel considers free right now (bind to 0), never the default 8799."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float, log_file: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"karbor-server exited with {proc.returncode}:\n"
                               f"{log_file.read_text(errors='replace')}")
        try:
            urllib.request.urlopen(url + "/", timeout=1)  # 300 raises HTTPError
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"karbor-server did not answer within {timeout}s:\n"
                       f"{log_file.read_text(errors='replace')}")


def local_providers(tmp: Path) -> Path:
    """``tmp/providers.d`` with the built-in No-Op and Local providers, the Local one's
    file-system bank in ``tmp/bank``: the provider directory most functional tests use."""
    providers = tmp / "providers.d"
    providers.mkdir()
    for name in ("noop.conf", "local.conf"):
        shutil.copy(BUILTIN_PROVIDERS / name, providers / name)
    conf = providers / "local.conf"
    conf.write_text(conf.read_text().replace(
        "[file_system_bank_plugin]\n",
        f"[file_system_bank_plugin]\nfile_system_bank_path = {tmp / 'bank'}\n", 1))
    return providers


@contextlib.contextmanager
def karbor_server(extra_config: dict[str, dict[str, object]] | None = None, *,
                  timeout: float = 60.0) -> Iterator[Server]:
    """Run ``karbor-server`` with a throw-away config; yield a :class:`Server`.

    ``extra_config`` maps section -> {option: value} and is appended to the file.
    """
    with tempfile.TemporaryDirectory(prefix="karbor-func-") as tmp:
        tmpdir = Path(tmp)
        state = tmpdir / "state"
        state.mkdir()
        port = free_port()
        sections: dict[str, dict[str, object]] = {
            "DEFAULT": {
                "state_path": state,
                "osapi_karbor_listen": "127.0.0.1",
                "osapi_karbor_listen_port": port,
                "auth_strategy": "noauth",
                "provider_config_dir": BUILTIN_PROVIDERS,
                "debug": False,
            },
        }
        for section, values in (extra_config or {}).items():
            sections.setdefault(section, {}).update(values)
        config = tmpdir / "karbor.conf"
        config.write_text("".join(
            f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
            for name, values in sections.items()))
        log_file = tmpdir / "server.log"
        env = dict(os.environ)
        env.pop("OS_AUTH_URL", None)
        with open(log_file, "wb") as log:
            proc = subprocess.Popen([str(EXECUTABLE), "--config-file", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=tmpdir)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, timeout, log_file)
            yield Server(url=url, state_path=state, config_file=config, log_file=log_file,
                         process=proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
