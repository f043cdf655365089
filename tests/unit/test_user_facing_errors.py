"""What a user meets outside the API's own routes: unknown URLs, a busy port, ``--help``,
``karbor-manage``'s errors and state, and how a hook's failure is logged.

A user error (a typo in a URL, a second server, a bad database URL, an unknown provider)
must read as one line that says what to fix; a traceback there reads as a Karbor bug.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client

from karbor.cmd import manage
from karbor.common import exception
from karbor.resource import Resource
from karbor.services.protection import engine
from karbor.services.protection.graph import GraphNode
from karbor.services.protection.protection_plugin import Operation

BIN = Path(sys.executable).parent
NOOP = "b766f37c-d011-4026-8228-28730d734a3f"


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("path", ["/foo", "/v2/x", "/v2", "/v1x", "/data-protect/v1/"])
def test_unknown_urls_outside_v1_are_a_json_404(unit_app, path):
    for method in ("GET", "POST"):
        resp = Client(unit_app).open(path, method=method)
        assert resp.status_code == 404, (method, path)
        assert resp.headers["Content-Type"].startswith("application/json")
        body = json.loads(resp.get_data())
        assert body["itemNotFound"]["code"] == 404
        assert body["itemNotFound"]["message"]


def test_root_still_answers_the_versions_document(unit_app):
    """The original client discovers the API version from ``/``."""
    for path in ("/", ""):
        resp = Client(unit_app).get(path or "/")
        assert resp.status_code == 300
        assert [v["id"] for v in json.loads(resp.get_data())["versions"]] == ["v1.0"]


# --------------------------------------------------------------------------- busy port


def test_a_busy_port_is_one_clear_error(unit_app):
    from karbor.cmd.api_server import APIServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError) as err:
            APIServer(host="127.0.0.1", port=port)
    message = str(err.value)
    assert f"cannot listen on 127.0.0.1:{port}" in message
    assert "another karbor-server" in message and "\n" not in message


# --------------------------------------------------------------------------- --help


@pytest.mark.parametrize("command, says", [
    ("karbor-server", "REST API, a protection worker and the operation engine"),
    ("karbor-api", "REST API alone"),
    ("karbor-wsgi", "karbor.cmd.wsgi:application"),
    ("karbor-protection", "protection worker"),
    ("karbor-operationengine", "operation engine"),
    ("karbor-manage", "database schema"),
])
def test_help_says_what_the_command_runs(command, says):
    proc = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"usage: {command}")
    head = " ".join(" ".join(lines[:10]).split())
    assert says in head, proc.stdout[:800]


# --------------------------------------------------------------------------- karbor-manage


def _manage(*args: str, env: dict | None = None, cwd: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if k != "KARBOR_STATE_PATH"}
    full_env.update(env or {})
    return subprocess.run([str(BIN / "karbor-manage"), *args], capture_output=True,
                          text=True, timeout=120, env=full_env, cwd=cwd)


def _one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("karbor-manage: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_manage_user_errors_are_one_line(tmp_path):
    state = str(tmp_path / "state")
    _one_line_error(_manage("--state_path", state, "bank", "import",
                            "00000000-0000-0000-0000-000000000000"), "could not be found")
    _one_line_error(_manage("--state_path", state, "bank", "import", NOOP, "--copy-bank"),
                    "no copy bank")
    _one_line_error(_manage("--state_path", str(tmp_path / "empty"), "service", "list"),
                    "no Karbor schema", "db sync")
    bad = tmp_path / "bad.conf"
    for url, says in [("nosuch://x", "nosuch"),
                      ("postgresql+psycopg2://postgres@127.0.0.1:1/x", "127.0.0.1")]:
        bad.write_text(f"[database]\nconnection = {url}\n")
        _one_line_error(_manage("--config-file", str(bad), "db", "sync"), says)
    _one_line_error(_manage("--config-file", str(tmp_path / "missing.conf"), "db", "version"),
                    "missing.conf")


def test_manage_finds_the_state_of_run_server_sh(tmp_path):
    """``KARBOR_STATE_PATH`` (what run-server.sh honours) and ``--state_path`` both work."""
    state = tmp_path / "state"
    proc = _manage("--state_path", str(state), "db", "sync")
    assert proc.returncode == 0, proc.stderr
    assert (state / "karbor.sqlite").exists()
    proc = _manage("db", "version", env={"KARBOR_STATE_PATH": str(state)})
    assert proc.returncode == 0 and proc.stdout.strip() not in ("", "none"), proc
    proc = _manage("service", "list", env={"KARBOR_STATE_PATH": str(state)})
    assert proc.returncode == 0 and proc.stdout.split()[:2] == ["id", "binary"], proc


def test_manage_default_state_is_the_checkout_s_state(monkeypatch, tmp_path):
    monkeypatch.delenv("KARBOR_STATE_PATH", raising=False)
    checkout = Path(manage.__file__).resolve().parents[2]
    expected = str(checkout / ".state") if (checkout / "run-server.sh").is_file() \
        and (checkout / ".state").is_dir() else None
    assert manage.default_state_path() == expected
    monkeypatch.setenv("KARBOR_STATE_PATH", str(tmp_path))
    assert manage.default_state_path() == str(tmp_path)


# --------------------------------------------------------------------------- hook logging


class _Plugin:
    def __init__(self, exc: Exception):
        self.exc = exc

    def get_protect_operation(self, resource):
        exc = self.exc

        class _Failing(Operation):
            def on_main(self, checkpoint, resource, context, parameters, **kwargs):
                raise exc

        return _Failing()


class _Provider:
    def __init__(self, exc: Exception):
        self.plugin = _Plugin(exc)

    def plugin_for(self, resource_type):
        return self.plugin


@pytest.mark.parametrize("exc, traceback", [
    (exception.InvalidInput(reason="restore_path: not empty"), False),
    (ValueError("a bug in a plugin"), True),
])
def test_hook_failure_logging(caplog, exc, traceback):
    roots = [GraphNode(Resource("Karbor::Test::Thing", "t1", "thing"))]
    with caplog.at_level(logging.ERROR, logger=engine.LOG.name):
        with pytest.raises(engine.OperationFailed):
            engine.run_hooks(_Provider(exc), roots, "protect", None, None, {}, {})
    records = [r for r in caplog.records if "failed for Karbor::Test::Thing t1" in r.message]
    assert len(records) == 1, caplog.text
    assert bool(records[0].exc_info) is traceback
    if not traceback:
        assert "restore_path: not empty" in records[0].getMessage()


def test_a_plain_postgresql_url_uses_the_installed_driver():
    """``postgresql://`` alone means psycopg 3 to SQLAlchemy 2.1, which Karbor does not
    install: the server would not start with the URL users write."""
    from karbor.common import config
    from karbor.common.config import CONF

    config.parse_args([], "karbor-unit-tests")
    CONF.set_override("connection", "postgresql://karbor:pw@db1/karbor", group="database")
    try:
        assert config.database_url() == "postgresql+psycopg2://karbor:pw@db1/karbor"
        CONF.set_override("connection", "mysql+pymysql://k@db/karbor", group="database")
        assert config.database_url() == "mysql+pymysql://k@db/karbor"
    finally:
        CONF.clear_override("connection", group="database")
