"""``karborctl`` against a real karbor-server with the Local Provider (issue 11, item 4).

Every command runs as a subprocess (``.venv/bin/karborctl``); ``-o json`` output is parsed
and compared with what the API itself answers for the same record. Protect and restore
really move a directory tree (the restored tree equals the source); ``--wait`` exits 0 only
when the operation succeeded and prints the reasons when it did not; the progress bar is
read from a real pseudo-terminal (pexpect) while a few hundred MiB are protected.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pexpect
import pytest
import requests

from karbor.cli.main import build_parser
from tests.functional._server import karbor_server, local_providers
from tests.functional.test_local_directory import (
    ENTRY_POINTS,
    LOCAL_PROVIDER,
    TYPE,
    _installed,
    _make_tree,
    _snapshot,
)

KARBORCTL = Path(sys.executable).parent / "karborctl"
NOOP_PROVIDER = "b766f37c-d011-4026-8228-28730d734a3f"
CLI_TIMEOUT = 300
BIG = 384 * 1024 * 1024


class Env:
    """The server, a project of our own, and the two ways to ask: CLI and plain HTTP."""

    def __init__(self, srv, tmp: Path, roots: Path):
        self.srv = srv
        self.tmp = tmp
        self.roots = roots
        self.project = uuid.uuid4().hex
        self.base = f"{srv.url}/v1/{self.project}"
        self.headers = {"X-Auth-Token": f"demo:{self.project}"}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "KARBOR"))}
        env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
        env.update(extra)
        return env

    def run(self, *args: str, env: dict | None = None, connect: bool = True,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        prefix = ["--url", self.srv.url, "--token", f"demo:{self.project}"] if connect else []
        return subprocess.run([str(KARBORCTL), *prefix, *args], capture_output=True,
                              text=True, timeout=timeout, env=env or self.env())

    def ok(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr,
                                      self.srv.log()[-3000:])
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def json(self, *args: str, **kwargs):
        return json.loads(self.ok(*args, "-o", "json", **kwargs).stdout)

    def fails(self, *args: str, code: int = 1) -> subprocess.CompletedProcess:
        """Runs a command that must fail with ``code``, cleanly (no traceback)."""
        proc = self.run(*args)
        assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def api(self, method: str, path: str, body=None, status: int = 200, admin: bool = False):
        headers = {"X-Auth-Token": f"admin:{self.project}"} if admin else self.headers
        resp = requests.request(method, f"{self.base}/{path}", json=body, headers=headers,
                                timeout=30)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.content else {}

    def directory(self, name: str) -> dict:
        """The protectable instance of ``roots/name``."""
        instances = self.api("GET", f"protectables/{TYPE}/instances")["instances"]
        return next(i for i in instances if i["name"] == str(self.roots / name))

    def plan(self, name: str) -> str:
        inst = self.directory(name)
        return self.json("plan", "create", name, "--provider", LOCAL_PROVIDER,
                         "--resource", f"{TYPE}={inst['id']}")["id"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """local_env of test_local_directory, once for the module (one server for all)."""
    tmp = tmp_path_factory.mktemp("karborctl")
    with pytest.MonkeyPatch.context() as mp:
        if not _installed():
            dist = tmp / "eps" / "karbor_local_directory-0.dist-info"
            dist.mkdir(parents=True)
            (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: karbor-local-"
                                           "directory\nVersion: 0\n")
            (dist / "entry_points.txt").write_text(ENTRY_POINTS)
            mp.setenv("PYTHONPATH", f"{dist.parent}:{Path(__file__).parents[2]}")
        providers = local_providers(tmp)
        roots = tmp / "roots"
        roots.mkdir()
        (tmp / "outside").mkdir()
        source = roots / "source"
        source.mkdir()
        _make_tree(source)
        with karbor_server({"DEFAULT": {"provider_config_dir": providers,
                                        "progress_interval": 0.2},
                            "local_directory": {"roots": roots}}) as srv:
            yield Env(srv, tmp, roots)


# --------------------------------------------------------------------------- no server


def _leaves(parser, path=()):
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        if name in ("schedule",):  # an alias: the same parser as scheduled-operation
            continue
        yield from _leaves(child, (*path, name))


def test_every_command_has_an_example_and_completion_knows_it():
    leaves = list(_leaves(build_parser()))
    assert len(leaves) > 40
    for path, parser in leaves:
        assert "example:\n  karborctl" in parser.format_help(), path
    proc = subprocess.run([str(KARBORCTL), "checkpoint", "describe", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "karborctl checkpoint describe PROVIDER CHECKPOINT" in proc.stdout

    def complete(*words: str) -> set[str]:
        script = (f'source <("{KARBORCTL}" completion bash)\n'
                  f"COMP_WORDS=(karborctl {' '.join(words)}); "
                  f"COMP_CWORD={len(words)}; _karborctl; echo \"${{COMPREPLY[@]}}\"")
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return set(out.stdout.split())

    assert {"protect", "protectable", "provider"} <= complete("pro")
    assert complete("pl") == {"plan"}
    assert complete("checkpoint", "d") == {"delete", "describe"}
    assert "--wait" in complete("restore", "create", "--w")
    assert "--param" in complete("--url", "http://x", "restore", "create", "CP", "--p")

    # argcomplete's protocol too (what `eval "$(register-python-argcomplete karborctl)"`
    # sets up): the completions come back on file descriptor 8.
    line = "karborctl checkpoint de"
    argcomplete_env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line,
                           COMP_POINT=str(len(line)), _ARGCOMPLETE_IFS=" ")
    proc = subprocess.run(["bash", "-c", f'"{KARBORCTL}" 8>&1 9>/dev/null'],
                          env=argcomplete_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    offered = set(proc.stdout.split())
    assert offered == {"delete", "describe"}


def test_errors_are_one_line_without_a_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "KARBOR"))}
    run = [str(KARBORCTL)]
    proc = subprocess.run([*run, "plan", "list"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no Karbor URL"), proc.stderr
    proc = subprocess.run([*run, "--url", "http://127.0.0.1:9", "--project", "p", "plan",
                           "list"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: cannot connect to http://127.0.0.1:9/v1/p: "
                                   "connection refused (is karbor-server running?)")
    proc = subprocess.run([*run, "plan", "frobnicate"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


# --------------------------------------------------------------------------- read-only


def test_providers_and_protectables(env):
    listed = env.json("provider", "list")
    assert listed == env.api("GET", "providers")["providers"]
    assert {p["id"] for p in listed} == {LOCAL_PROVIDER, NOOP_PROVIDER}
    assert env.json("provider", "show", LOCAL_PROVIDER) == \
        env.api("GET", f"providers/{LOCAL_PROVIDER}")["provider"]
    table = env.ok("provider", "list").stdout
    assert "Local Provider" in table and LOCAL_PROVIDER in table

    assert env.json("protectable", "list") == env.api("GET", "protectables")["protectable_type"]
    assert env.json("protectable", "show", TYPE) == \
        env.api("GET", f"protectables/{TYPE}")["protectable_type"]
    instances = env.json("protectable", "instances", TYPE)
    assert instances == env.api("GET", f"protectables/{TYPE}/instances")["instances"]
    inst = env.directory("source")
    assert env.json("protectable", "instance", TYPE, inst["id"]) == \
        env.api("GET", f"protectables/{TYPE}/instances/{inst['id']}")["instance"]
    import yaml

    assert yaml.safe_load(env.ok("protectable", "instances", TYPE, "-o", "yaml").stdout) == \
        instances


def test_services_quotas_and_quota_classes(env):
    admin = ("--token", f"admin:{env.project}")  # after the command: overrides demo's
    services = env.json("service", "list", *admin)
    assert services == env.api("GET", "os-services", admin=True)["services"]
    engine = next(s for s in services if s["binary"] == "karbor-operationengine")
    disabled = env.json("service", "disable", str(engine["id"]), "--reason", "maintenance",
                        *admin)
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "maintenance")
    assert env.json("service", "enable", str(engine["id"]), *admin)["status"] == "enabled"
    api = next(s for s in services if s["binary"] == "karbor-api")
    proc = env.fails("service", "disable", str(api["id"]), *admin)
    assert re.fullmatch(r"error: .*karbor-operationengine.* \(HTTP 400\)\n", proc.stderr)

    p = env.project
    assert env.json("quota", "show") == env.api("GET", f"quotas/{p}")["quota"]
    assert env.json("quota", "show", p, "--detail") == \
        env.api("GET", f"quotas/{p}/detail")["quota"]
    assert env.json("quota", "defaults") == env.api("GET", f"quotas/{p}/defaults")["quota"]
    updated = env.json("quota", "update", p, "--plans", "7", "--checkpoints", "100", *admin)
    assert updated == {"plans": 7, "checkpoints": 100}
    assert env.api("GET", f"quotas/{p}")["quota"]["plans"] == 7
    assert env.json("quota", "delete", p, *admin) == {}
    assert env.api("GET", f"quotas/{p}")["quota"]["plans"] == 50

    assert env.json("quota-class", "show", "default") == \
        env.api("GET", "quota_classes/default")["quota_class"]
    updated = env.json("quota-class", "update", "gold", "--plans", "60", *admin)
    assert updated["plans"] == 60
    shown = env.json("quota-class", "show", "gold")
    assert shown == env.api("GET", "quota_classes/gold")["quota_class"]
    assert shown["plans"] == 60


def test_unknown_and_invalid_ids(env):
    missing = str(uuid.uuid4())
    proc = env.fails("restore", "show", missing)
    assert proc.stderr == f"error: Restore {missing} could not be found. (HTTP 404)\n"
    proc = env.fails("checkpoint", "show", LOCAL_PROVIDER, missing)
    assert proc.stderr == f"error: Checkpoint {missing} could not be found. (HTTP 404)\n"
    proc = env.fails("plan", "show", "not-a-uuid")
    assert proc.stderr.endswith("(HTTP 400)\n") and proc.stderr.count("\n") == 1
    proc = env.fails("restore", missing, "--wait")
    assert "not found with any provider" in proc.stderr
    proc = env.fails("--url", env.srv.url + "/v1/other", "--project", "mine", "plan", "list")
    assert "does not match" in proc.stderr


# --------------------------------------------------------------------------- plans, schedules


def test_plan_lifecycle(env):
    inst = env.directory("source")
    created = env.json("plan", "create", "cli-plan", "--provider", LOCAL_PROVIDER,
                       "--resource", f"{TYPE}={inst['id']}", "--description", "by karborctl")
    assert created == env.api("GET", f"plans/{created['id']}")["plan"]
    assert created["resources"][0]["id"] == inst["id"]
    assert created["resources"][0]["name"] == inst["name"]
    assert env.json("plan", "show", created["id"]) == created
    assert created["id"] in [p["id"] for p in env.json("plan", "list", "--name", "cli-plan")]
    updated = env.json("plan", "update", created["id"], "--name", "renamed")
    assert updated["name"] == "renamed"
    assert updated == env.api("GET", f"plans/{created['id']}")["plan"]
    proc = env.ok("plan", "delete", created["id"])
    assert f"plan {created['id']} deleted" in proc.stdout
    env.api("GET", f"plans/{created['id']}", status=404)
    proc = env.fails("plan", "create", "x", "--provider", LOCAL_PROVIDER)
    assert proc.stderr.startswith("error: a plan needs resources")


def test_triggers_and_scheduled_operations(env):
    pattern = "BEGIN:VEVENT\\nRRULE:FREQ=DAILY;INTERVAL=1;\\nEND:VEVENT"
    trigger = env.json("trigger", "create", "daily", "--pattern", pattern,
                       "--start-time", "2030-01-01 00:00:00")
    assert trigger == env.api("GET", f"triggers/{trigger['id']}")["trigger_info"]
    assert trigger["properties"]["pattern"].startswith("BEGIN:VEVENT\nRRULE")
    assert env.json("trigger", "show", trigger["id"]) == trigger
    assert trigger["id"] in [t["id"] for t in env.json("trigger", "list")]
    renamed = env.json("trigger", "update", trigger["id"], "--name", "daily2")
    assert renamed["name"] == "daily2"
    assert renamed == env.api("GET", f"triggers/{trigger['id']}")["trigger_info"]

    plan = env.plan("source")
    op = env.json("scheduled-operation", "create", "nightly", "--trigger", trigger["id"],
                  "--plan", plan, "--description", "every day")
    assert op == env.api("GET", f"scheduled_operations/{op['id']}")["scheduled_operation"]
    assert op["operation_definition"]["provider_id"] == LOCAL_PROVIDER
    assert env.json("scheduled-operation", "show", op["id"]) == op
    assert op["id"] in [o["id"] for o in env.json("schedule", "list")]
    off = env.json("scheduled-operation", "update", op["id"], "--disable")
    assert off["enabled"] is False
    assert off == env.api("GET", f"scheduled_operations/{op['id']}")["scheduled_operation"]

    proc = env.fails("trigger", "delete", trigger["id"])  # still used by the operation
    assert proc.stderr.endswith("(HTTP 424)\n"), proc.stderr
    assert env.json("scheduled-operation", "delete", op["id"]) == {}
    env.api("GET", f"scheduled_operations/{op['id']}", status=404)
    assert "deleted" in env.ok("trigger", "delete", trigger["id"]).stdout
    env.api("GET", f"triggers/{trigger['id']}", status=404)


# --------------------------------------------------------------------------- protect/restore


def test_protect_restore_verify_copy_logs_and_delete(env):
    expected = _snapshot(env.roots / "source")
    plan = env.plan("source")

    cp = env.json("protect", plan, "--wait")
    assert cp["status"] == "available"
    assert cp == env.api("GET", f"providers/{LOCAL_PROVIDER}/checkpoints/{cp['id']}")[
        "checkpoint"]
    assert cp["id"] in [c["id"] for c in env.json("checkpoint", "list", LOCAL_PROVIDER)]
    assert env.json("checkpoint", "show", LOCAL_PROVIDER, cp["id"]) == cp
    assert env.json("checkpoint", "show", cp["id"]) == cp  # provider found by searching
    assert env.json("checkpoint", "describe", LOCAL_PROVIDER, cp["id"]) == cp
    # A plan is named as the user named it, too (a name no other test of the module uses).
    named = env.json("plan", "update", plan, "--name", "protect by name")
    assert named["name"] == "protect by name"
    by_name = env.json("protect", "protect by name", "--wait")
    assert by_name["status"] == "available"
    assert by_name["protection_plan"]["id"] == plan
    env.ok("checkpoint", "delete", LOCAL_PROVIDER, by_name["id"], "--wait")
    missing = env.run("protect", "no such plan")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no plan is named 'no such plan'"
    text = env.ok("checkpoint", "describe", LOCAL_PROVIDER, cp["id"]).stdout
    assert "available" in text
    assert f"{TYPE}#" in text  # the per-resource table
    if cp.get("summary"):
        assert "summary:" in text

    # Restore with the shortcut: the provider and the parameter's type are found.
    target = env.roots / "restored"
    restore = env.json("restore", cp["id"], "--param", f"restore_path={target}", "--wait")
    assert restore["status"] == "success", restore
    assert restore == env.api("GET", f"restores/{restore['id']}")["restore"]
    assert _snapshot(target) == expected
    assert env.json("restore", "show", restore["id"]) == restore
    assert restore["id"] in [r["id"] for r in env.json("restore", "list")]
    assert env.json("restore", "describe", restore["id"]) == restore

    # A restore path outside the roots is refused by the API: one line, exit 1.
    outside = env.tmp / "outside" / "restored"
    proc = env.run("restore", "create", cp["id"], "--provider", LOCAL_PROVIDER,
                   "--parameters", json.dumps({TYPE: {"restore_path": str(outside)}}),
                   "--wait", "-o", "json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert re.fullmatch(r"error: .*is not under the \[local_directory\] roots.* \(HTTP 400\)\n",
                        proc.stderr), proc.stderr
    assert not outside.exists()

    ver = env.json("verification", "create", cp["id"], "--wait")
    assert ver["status"] == "success", ver
    assert ver == env.api("GET", f"verifications/{ver['id']}")["verification"]
    assert env.json("verification", "show", ver["id"]) == ver
    assert env.json("verification", "describe", ver["id"]) == ver
    assert ver["id"] in [v["id"] for v in env.json("verification", "list")]

    # Operation logs: of the checkpoint, of the restore, of the plan.
    logs = env.json("logs", cp["id"])
    assert logs and all(log["checkpoint_id"] == cp["id"] for log in logs)
    assert "protect" in {log["operation_type"] for log in logs}
    assert env.json("logs", "--restore", restore["id"])[0]["restore_id"] == restore["id"]
    plan_logs = env.json("logs", "--plan", plan)
    assert {log["id"] for log in logs} <= {log["id"] for log in plan_logs}
    listed = env.json("operation-log", "list", "--checkpoint", cp["id"])
    assert {log["id"] for log in listed} == {log["id"] for log in logs}
    one = env.json("operation-log", "show", logs[0]["id"])
    assert one == env.api("GET", f"operation_logs/{logs[0]['id']}")["operation_log"]

    # Reset state, then copy (into the same bank: this provider has no copy bank).
    assert env.json("checkpoint", "reset-state", cp["id"], "--state", "error")[
        "status"] == "error"
    assert env.json("checkpoint", "reset-state", LOCAL_PROVIDER, cp["id"], "--state",
                    "available")["status"] == "available"
    copies = env.json("checkpoint", "copy", plan, "--wait")
    assert copies and all(c["status"] in ("finished", "available") for c in copies), copies
    for c in copies:
        assert c == env.api("GET", f"providers/{LOCAL_PROVIDER}/checkpoints/{c['id']}")[
            "checkpoint"]

    # Delete with --wait: 0 once deleted; the show afterwards says so (or 404s).
    for c in [cp, *copies]:
        proc = env.ok("checkpoint", "delete", LOCAL_PROVIDER, c["id"], "--wait")
        assert f"checkpoint {c['id']}: deleted" in proc.stderr
        resp = requests.get(f"{env.base}/providers/{LOCAL_PROVIDER}/checkpoints/{c['id']}",
                            headers=env.headers, timeout=30)
        assert resp.status_code == 404 or resp.json()["checkpoint"]["status"] == "deleted"


def test_protect_wait_failure_prints_the_reason(env):
    doomed = env.roots / "doomed"
    doomed.mkdir()
    (doomed / "f").write_text("x")
    plan = env.plan("doomed")
    shutil.rmtree(doomed)
    proc = env.run("protect", plan, "--wait", "-o", "json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    cp = json.loads(proc.stdout)
    assert cp["status"] == "error"
    assert re.search(rf"^error: checkpoint {cp['id']} ended error$", proc.stderr, re.M)
    assert len(proc.stderr.strip().splitlines()) >= 2  # at least one reason line
    text = env.ok("checkpoint", "describe", cp["id"]).stdout
    assert "error" in text
    # Without --wait the create itself succeeds (exit 0): it only started the protect.
    started = env.json("checkpoint", "create", plan, "--provider", LOCAL_PROVIDER)
    assert started["status"] == "protecting"


def _packs(env: Env) -> dict[Path, float]:
    packs = env.tmp / "bank" / "karbor" / "chunks" / "packs"
    return {f: f.stat().st_mtime_ns for f in packs.rglob("*") if f.is_file()}


def test_failed_restore_and_verification_wait_exit_non_zero_with_reasons(env):
    fragile = env.roots / "fragile"
    fragile.mkdir()
    (fragile / "data.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    plan = env.plan("fragile")
    before = _packs(env)
    cp = env.json("protect", plan, "--wait")
    new = [f for f, mtime in _packs(env).items() if before.get(f) != mtime]
    assert new
    for pack in new:  # only this checkpoint's (random, so unshared) chunks are in there
        data = bytearray(pack.read_bytes())
        data[len(data) // 2] ^= 0x01
        pack.write_bytes(bytes(data))

    proc = env.run("verification", "create", cp["id"], "--wait", "-o", "json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    ver = json.loads(proc.stdout)
    assert ver["status"] == "fail"
    assert ver == env.api("GET", f"verifications/{ver['id']}")["verification"]
    assert re.search(rf"^error: verification {ver['id']} ended fail$", proc.stderr, re.M)
    assert "orrupt" in proc.stderr

    target = env.roots / "fragile-restored"
    proc = env.run("restore", cp["id"], "--param", f"{TYPE}.restore_path={target}",
                   "--wait", "-o", "json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    failed = json.loads(proc.stdout)
    assert failed["status"] == "fail"
    assert failed == env.api("GET", f"restores/{failed['id']}")["restore"]
    assert re.search(rf"^error: restore {failed['id']} ended fail$", proc.stderr, re.M)
    reasons = [" ".join(r.split()) for r in failed["resources_reason"].values() if r]
    assert reasons and all(r in proc.stderr for r in reasons), (reasons, proc.stderr)
    assert not target.exists()
    text = " ".join(env.ok("restore", "describe", failed["id"]).stdout.split())
    assert "fail" in text and "orrupt" in text
    text = " ".join(env.ok("verification", "describe", ver["id"]).stdout.split())
    assert "fail" in text and "orrupt" in text


def test_url_project_and_env_defaults(env):
    base = f"{env.srv.url}/v1/{env.project}"
    plans = env.api("GET", "plans")["plans"]
    assert env.json("--url", base, "plan", "list", connect=False) == plans
    assert env.json("plan", "list", "--url", env.srv.url, "--project", env.project,
                    connect=False) == plans
    assert env.json("plan", "list", connect=False,
                    env=env.env(KARBOR_URL=env.srv.url, KARBOR_TOKEN=f"demo:{env.project}")
                    ) == plans


def test_keystoneauth_through_clouds_yaml_and_os_variables(env, tmp_path):
    """The Keystone path (openstack.config -> keystoneauth1 session and adapter), with the
    admin_token plugin: no Keystone needed, the token and endpoint are the no-auth ones."""
    endpoint = f"{env.srv.url}/v1/{env.project}"
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  here:\n    auth_type: admin_token\n    auth:\n"
                      f"      token: 'demo:{env.project}'\n      endpoint: '{endpoint}'\n")
    providers = env.api("GET", "providers")["providers"]
    cloud_env = env.env(OS_CLIENT_CONFIG_FILE=str(clouds))
    assert env.json("--os-cloud", "here", "provider", "list", connect=False,
                    env=cloud_env) == providers
    assert env.json("provider", "list", connect=False,
                    env=env.env(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="here")) == providers
    os_env = env.env(OS_AUTH_TYPE="admin_token", OS_TOKEN=f"demo:{env.project}",
                     OS_ENDPOINT=endpoint, OS_CLIENT_CONFIG_FILE=str(tmp_path / "none.yaml"))
    assert env.json("provider", "list", connect=False, env=os_env) == providers
    missing = str(uuid.uuid4())
    proc = env.run("--os-cloud", "here", "plan", "show", missing, connect=False,
                   env=cloud_env)
    assert (proc.returncode, proc.stderr) == (
        1, f"error: Plan {missing} could not be found. (HTTP 404)\n")
    proc = env.run("--os-cloud", "elsewhere", "plan", "list", connect=False, env=cloud_env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: authentication failed:") and \
        proc.stderr.count("\n") == 1, proc.stderr


# --------------------------------------------------------------------------- progress (pty)


def _write_big(top: Path) -> None:
    top.mkdir()
    chunk = 16 * 1024 * 1024
    for i in range(BIG // chunk // 4):
        with open(top / f"blob{i}.bin", "wb") as f:
            for _ in range(4):
                f.write(os.urandom(chunk))


def _pty(env: Env, *args: str) -> tuple[int, str]:
    child = pexpect.spawn(str(KARBORCTL), ["--url", env.srv.url, "--token",
                                           f"demo:{env.project}", *args],
                          env=env.env(COLUMNS="120", LINES="40"), encoding="utf-8",
                          timeout=CLI_TIMEOUT, dimensions=(40, 120))
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def test_progress_bar_on_a_terminal_and_plain_lines_elsewhere(env):
    big = env.roots / "big"
    _write_big(big)
    plan = env.plan("big")

    status, screen = _pty(env, "protect", plan, "--wait")
    assert status == 0, screen
    frames = [f for f in re.split(r"[\r\n]", screen) if f.strip()]
    # What a user saw while it ran: the status word with a bar and a percent, or a
    # spinner with the elapsed time when no progress had been reported yet.
    bars = [f for f in frames if f.startswith("protecting")]
    assert bars, screen
    assert any(re.search(r"\[[#-]+\]\s+\d+\.\d%", f) for f in bars) or \
        any(re.search(r"protecting [|/\\-] \d+s", f) for f in bars), bars
    shown_bytes = [f for f in bars if re.search(r"\d+\.\d [KMG]iB", f)]
    assert shown_bytes, bars
    final = re.search(r"checkpoint (\S+): available \(([^)]*)\)", screen)
    assert final, screen
    cp_id = final.group(1)
    assert env.api("GET", f"providers/{LOCAL_PROVIDER}/checkpoints/{cp_id}")[
        "checkpoint"]["status"] == "available"

    target = env.roots / "big-restored"
    status, screen = _pty(env, "restore", cp_id, "--parameters",
                          json.dumps({TYPE: {"restore_path": str(target)}}), "--wait")
    assert status == 0, screen
    assert re.search(r"restore \S+: success", screen), screen
    assert any(f.startswith("in_progress") for f in re.split(r"[\r\n]", screen)), screen
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in big.iterdir())
    for f in big.iterdir():
        assert (target / f.name).read_bytes() == f.read_bytes()

    # Not a terminal: plain lines only, no carriage returns, and JSON on stdout.
    proc = env.ok("protect", plan, "--wait", "-o", "json")
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "available"
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"checkpoint {record['id']}: available")
    assert all(line.startswith(f"checkpoint {record['id']}: ") for line in lines)
