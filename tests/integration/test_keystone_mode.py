"""Keystone mode end to end, against a real Keystone, with python-karborclient in normal mode.

A real Keystone (``keystone_server.py``: keystone 30.0.0 from PyPI, SQLite, fernet) runs on a
free port; ``karbor-server`` runs with ``auth_strategy = keystone`` (keystonemiddleware's
``auth_token`` validating every request) and a ``[trustee]`` section; the unmodified
python-karborclient 2.1.0 CLI authenticates with a user name and password and finds Karbor
in the catalog (service type ``data-protect``), never with ``--karbor-url``.

Scheduled operations act through Keystone trusts: creating one creates a trust (trustor =
the caller, trustee = Karbor's service user, impersonation), the engine fires it with a
trust-scoped token, deleting the last operation of that user deletes the trust.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.functional._cli import as_json, column, error, props, rows, wait_for
from tests.functional.conftest import (
    BUILTIN_PROVIDERS,
    KarborServer,
    karborclient,  # noqa: F401 (the client fixture)
)
from tests.integration.keystone_server import Account, KeystoneServer

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
PROJECT_TYPE = "OS::Keystone::Project"
CLI_TIMEOUT = 60


@pytest.fixture(scope="module")
def keystone(tmp_path_factory) -> Iterator[KeystoneServer]:
    try:
        ks = KeystoneServer(tmp_path_factory.mktemp("keystone"))
    except Exception as exc:  # installation failed: say why, never skip
        pytest.fail(f"cannot install Keystone: {exc}")
    try:
        ks.start()
    except Exception as exc:
        ks.stop()
        pytest.fail(f"cannot start Keystone: {exc}")
    yield ks
    ks.stop()


class KeystoneKarbor(KarborServer):
    """``karbor-server`` in Keystone mode, plus a CLI and an HTTP helper per account."""

    def __init__(self, keystone: KeystoneServer, client: str, tmpdir: Path) -> None:
        super().__init__(backend="sqlite", db_url=f"sqlite:///{tmpdir / 'state' / 'karbor.sqlite'}",
                         client=client, tmpdir=tmpdir)
        self.keystone = keystone
        self.db_path = self.state_path / "karbor.sqlite"
        self.http = self.session
        self._tokens: dict[str, str] = {}

    def write_config(self) -> None:
        ks = self.keystone
        self.state_path.mkdir(parents=True, exist_ok=True)
        shutil.copytree(BUILTIN_PROVIDERS, self.tmpdir / "providers.d", dirs_exist_ok=True)
        service_user = (
            f"auth_url = {ks.v3}\n"
            "auth_type = password\n"
            f"username = {ks.karbor.username}\n"
            f"password = {ks.karbor.password}\n"
            "user_domain_id = default\n")
        self.config_file.write_text(
            "[DEFAULT]\n"
            f"state_path = {self.state_path}\n"
            "osapi_karbor_listen = 127.0.0.1\n"
            f"osapi_karbor_listen_port = {self.port}\n"
            "auth_strategy = keystone\n"
            # the copy beside this file, which the tiers' subclasses rewrite
            "provider_config_dir = providers.d\n"
            "min_interval = 2\n"
            "trigger_poll_interval = 0.5\n"
            "\n[database]\n"
            f"connection = sqlite:///{self.db_path}\n"
            "\n[keystone_authtoken]\n"
            f"www_authenticate_uri = {ks.v3}\n"
            + service_user +
            f"project_name = {ks.karbor.project_name}\n"
            "project_domain_id = default\n"
            "region_name = RegionOne\n"
            # no memcached_servers: tokens are cached in the process
            "\n[trustee]\n"
            + service_user +
            # a project scope here is dropped for trust-scoped tokens
            f"project_name = {ks.karbor.project_name}\n"
            "project_domain_id = default\n")

    # -- clients
    def cli(self, account: Account, *args: str) -> tuple[int, str, str]:
        """The karbor CLI in normal Keystone mode: password auth, endpoint from the catalog."""
        ks = self.keystone
        cmd = [self.client, "--os-auth-url", ks.v3,
               "--os-username", account.username, "--os-password", account.password,
               "--os-project-name", account.project_name,
               "--os-user-domain-id", "default", "--os-project-domain-id", "default",
               *args]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OS_", "KARBOR_", "ALL_TENANTS"))}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        self.cli_calls += 1
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
        return proc.returncode, proc.stdout, proc.stderr

    def ok(self, account: Account, *args: str) -> str:
        rc, out, err = self.cli(account, *args)
        assert rc == 0, (f"karbor {' '.join(args)} as {account.username} failed ({rc}):\n"
                         f"stdout:\n{out}\nstderr:\n{err}")
        return out

    def fails(self, account: Account, *args: str) -> tuple[str, int]:
        rc, out, err = self.cli(account, *args)
        assert rc != 0, f"karbor {' '.join(args)} as {account.username} succeeded:\n{out}"
        return error(out + err)

    def token(self, account: Account) -> str:
        if account.username not in self._tokens:
            self._tokens[account.username] = self.keystone.token(account)[0]
        return self._tokens[account.username]

    def request(self, method: str, path: str, *, account: Account | None = None,
                token: str | None = None, project_id: str | None = None,
                **kw) -> requests.Response:
        """``path`` relative to ``/v1/<project>/``; the account's token unless ``token``."""
        project_id = project_id or (account.project_id if account else None)
        headers = dict(kw.pop("headers", {}))
        if token is None and account is not None:
            token = self.token(account)
        if token is not None:
            headers["X-Auth-Token"] = token
        return self.http.request(method, f"{self.base_url}/v1/{project_id}/{path}",
                                 headers=headers, timeout=30, **kw)

    def db(self, query: str, *args) -> list[tuple]:
        """White-box read of Karbor's SQLite database."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def karbor_ks(keystone, karborclient, tmp_path_factory) -> Iterator[KeystoneKarbor]:  # noqa: F811
    srv = KeystoneKarbor(keystone, karborclient, tmp_path_factory.mktemp("karbor-keystone"))
    keystone.provision_karbor(srv.port)
    try:
        srv.start()
    except Exception as exc:
        srv.stop()
        pytest.fail(f"cannot start karbor-server in Keystone mode: {exc}")
    yield srv
    code = srv.stop()
    assert code == 0, f"karbor-server did not exit cleanly on SIGTERM ({code}):\n{srv.log()}"
    assert "Traceback (most recent call last)" not in srv.log(), srv.log()


# --------------------------------------------------------------------------- helpers


def create_plan(srv: KeystoneKarbor, account: Account, name: str) -> dict:
    resource = f"{account.project_id}={PROJECT_TYPE}={account.project_name}"
    return props(srv.ok(account, "plan-create", name, NOOP, resource))


def checkpoint_status(srv: KeystoneKarbor, account: Account, checkpoint_id: str) -> str:
    resp = srv.request("GET", f"providers/{NOOP}/checkpoints/{checkpoint_id}", account=account)
    return resp.json()["checkpoint"]["status"] if resp.status_code == 200 \
        else f"HTTP {resp.status_code}"


def extra(checkpoint: dict) -> dict:
    """A checkpoint's extra_info (the API shows it as a JSON string, as the original)."""
    value = checkpoint.get("extra_info")
    return (json.loads(value) if isinstance(value, str) else value) or {}


def trusts_of(srv: KeystoneKarbor, account: Account) -> list[dict]:
    """The trusts ``account`` gave, as Keystone lists them to the trustor."""
    resp = srv.keystone.request("GET", "/OS-TRUST/trusts", token=srv.token(account),
                                params={"trustor_user_id": account.user_id})
    return resp.json()["trusts"]


def state_trust(srv: KeystoneKarbor, operation_id: str) -> str | None:
    found = srv.db("SELECT trust_id FROM scheduled_operation_states WHERE operation_id = ?",
                   operation_id)
    assert len(found) == 1, found
    return found[0][0]


# --------------------------------------------------------------------------- tests


def test_keystone_mode_with_the_original_client(karbor_ks: KeystoneKarbor):
    srv, ks = karbor_ks, karbor_ks.keystone
    demo, other, admin = ks.demo, ks.other, ks.admin

    # the client found Karbor in the catalog: it never got a URL
    assert NOOP in column(srv.ok(demo, "provider-list"), "Id")
    plan = create_plan(srv, demo, "keystone plan")
    assert plan["status"] == "suspended"
    listed = rows(srv.ok(demo, "plan-list"))
    assert [r["Id"] for r in listed] == [plan["id"]]

    checkpoint = props(srv.ok(demo, "checkpoint-create", NOOP, plan["id"]))
    wait_for(lambda: checkpoint_status(srv, demo, checkpoint["id"]), {"available"},
             timeout=30, what="checkpoint available")
    shown = props(srv.ok(demo, "checkpoint-show", NOOP, checkpoint["id"]))
    assert shown["status"] == "available"
    assert as_json(shown["extra_info"])["created_by"] == "manual"
    cp = srv.request("GET", f"providers/{NOOP}/checkpoints/{checkpoint['id']}",
                     account=demo).json()["checkpoint"]
    assert cp["project_id"] == demo.project_id

    # no token, or a bad one: keystonemiddleware answers 401
    assert srv.request("GET", "plans", project_id=demo.project_id).status_code == 401
    assert srv.request("GET", "plans", project_id=demo.project_id,
                       token="not-a-token").status_code == 401

    # another project's token cannot see the plan: 404 in its own project's URL ...
    message, code = srv.fails(other, "plan-show", plan["id"])
    assert code == 404, message
    assert srv.request("GET", f"plans/{plan['id']}", account=other).status_code == 404
    assert rows(srv.ok(other, "plan-list")) == []
    assert rows(srv.ok(other, "plan-list", "--all-tenants")) == []
    # ... and the demo project's URL is not its to use
    resp = srv.request("GET", f"plans/{plan['id']}", token=srv.token(other),
                       project_id=demo.project_id)
    assert resp.status_code == 400, resp.text

    # Keystone's admin role is Karbor's admin: all tenants
    assert rows(srv.ok(admin, "plan-list")) == []
    everyone = rows(srv.ok(admin, "plan-list", "--all-tenants"))
    assert plan["id"] in [r["Id"] for r in everyone]
    shown_by_admin = srv.request("GET", f"providers/{NOOP}/checkpoints",
                                 account=admin, params={"all_tenants": "1"}).json()
    assert checkpoint["id"] in [c["id"] for c in shown_by_admin["checkpoints"]]


def test_scheduled_operations_act_through_trusts(karbor_ks: KeystoneKarbor):
    srv, ks = karbor_ks, karbor_ks.keystone
    demo = ks.demo
    plan = create_plan(srv, demo, "scheduled keystone plan")
    start = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    trigger = props(srv.ok(
        demo, "trigger-create", "every two seconds", "time",
        r"pattern=BEGIN:VEVENT\nRRULE:FREQ=SECONDLY;INTERVAL=2;\nEND:VEVENT,"
        f"format=calendar,start_time={start},window=60"))
    definition = f"plan_id={plan['id']},provider_id={NOOP}"
    assert trusts_of(srv, demo) == []

    # A failure writes nothing and leaves no trust: a trust-scoped token may not create
    # trusts (Keystone says 403), so Karbor refuses with Keystone's reason.
    karbor_trust = ks.request("POST", "/OS-TRUST/trusts", token=srv.token(demo), json={
        "trust": {"trustor_user_id": demo.user_id, "trustee_user_id": ks.karbor.user_id,
                  "project_id": demo.project_id, "impersonation": True,
                  "roles": [{"name": "member"}]}}).json()["trust"]
    trust_token = ks.http.post(ks.v3 + "/auth/tokens", timeout=30, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": ks.karbor.username, "domain": {"id": "default"},
            "password": ks.karbor.password}}},
        "scope": {"OS-TRUST:trust": {"id": karbor_trust["id"]}}}}).headers["X-Subject-Token"]
    resp = srv.request("POST", "scheduled_operations", token=trust_token,
                       project_id=demo.project_id, json={"scheduled_operation": {
                           "name": "refused", "operation_type": "protect",
                           "trigger_id": trigger["id"],
                           "operation_definition": {"plan_id": plan["id"],
                                                    "provider_id": NOOP}}})
    assert resp.status_code == 403, resp.text
    assert "Keystone refused to create a trust" in resp.json()["forbidden"]["message"]
    ks.request("DELETE", f"/OS-TRUST/trusts/{karbor_trust['id']}", token=srv.token(demo))
    # a bad request never reaches Keystone
    message, code = srv.fails(demo, "scheduledoperation-create", "bad", "protect",
                              trigger["id"], f"plan_id={plan['id']},provider_id={plan['id']}")
    assert code in (400, 404), message
    assert rows(srv.ok(demo, "scheduledoperation-list")) == []
    assert srv.db("SELECT count(*) FROM scheduled_operations") == [(0,)]
    assert trusts_of(srv, demo) == []

    # creation: a trust from demo to karbor, impersonating, in the demo project
    operation = props(srv.ok(demo, "scheduledoperation-create", "through a trust", "protect",
                             trigger["id"], definition))
    trust_id = state_trust(srv, operation["id"])
    assert trust_id
    trust = ks.get_trust(trust_id, srv.token(demo))
    assert trust.status_code == 200, trust.text
    trust = trust.json()["trust"]
    assert trust["trustor_user_id"] == demo.user_id
    assert trust["trustee_user_id"] == ks.karbor.user_id
    assert trust["project_id"] == demo.project_id
    assert trust["impersonation"] is True
    assert "member" in {r["name"] for r in trust["roles"]}
    assert [t["id"] for t in trusts_of(srv, demo)] == [trust_id]

    # firing: the engine acts as demo through the trust
    def engine_checkpoints() -> list[dict]:
        listing = srv.request("GET", f"providers/{NOOP}/checkpoints", account=demo,
                              params={"plan_id": plan["id"]}).json()["checkpoints"]
        return [c for c in listing if extra(c).get("created_by") == "operation-engine"]

    wait_for(lambda: "fired" if any(c["status"] == "available" for c in engine_checkpoints())
             else "waiting", {"fired"}, timeout=60, interval=0.5,
             what="a checkpoint made by the operation engine")
    made = [c for c in engine_checkpoints() if c["status"] == "available"][0]
    assert made["project_id"] == demo.project_id
    assert extra(made)["scheduled_operation_id"] == operation["id"]
    shown = props(srv.ok(demo, "checkpoint-show", NOOP, made["id"]))
    assert as_json(shown["extra_info"])["created_by"] == "operation-engine"
    logs = srv.request("GET", "operation_logs", account=demo,
                       params={"checkpoint_id": made["id"]}).json()["operation_logs"]
    assert [log["scheduled_operation_id"] for log in logs] == [operation["id"]]
    assert made["id"] in column(srv.ok(demo, "operationlog-list"), "Checkpoint id")
    # the context the engine handed to the protection worker is the trust token's
    contexts = srv.db("SELECT context FROM operations WHERE checkpoint_id = ?", made["id"])
    context = json.loads(contexts[0][0])
    assert context["user_id"] == demo.user_id
    assert context["project_id"] == demo.project_id
    assert "member" in context["roles"]
    assert context["auth_token"]
    token_info = context["auth_token_info"]["token"]
    assert token_info["OS-TRUST:trust"]["id"] == trust_id
    assert token_info["OS-TRUST:trust"]["impersonation"] is True
    assert {s["type"] for s in context["service_catalog"]} >= {"identity", "data-protect"}

    # after a restart the engine acts through the stored trust again
    assert srv.stop() == 0, srv.log()
    srv.start()
    fired_before = {c["id"] for c in engine_checkpoints()}
    wait_for(lambda: "again" if any(c["status"] == "available" and c["id"] not in fired_before
                                    for c in engine_checkpoints()) else "waiting",
             {"again"}, timeout=60, interval=0.5, what="an engine checkpoint after a restart")

    # a second operation of the same user reuses the trust; deleting the first keeps it
    second = props(srv.ok(demo, "scheduledoperation-create", "same trust", "protect",
                          trigger["id"], definition))
    assert state_trust(srv, second["id"]) == trust_id
    assert len(trusts_of(srv, demo)) == 1
    srv.ok(demo, "scheduledoperation-delete", operation["id"])
    assert ks.get_trust(trust_id, srv.token(demo)).status_code == 200
    # deleting the last one deletes the trust
    srv.ok(demo, "scheduledoperation-delete", second["id"])
    assert ks.get_trust(trust_id, srv.token(demo)).status_code == 404
    assert trusts_of(srv, demo) == []
    srv.ok(demo, "trigger-delete", trigger["id"])
