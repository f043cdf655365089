"""Negative tests of every v1 endpoint over real HTTP against a real ``karbor-server``.

Every refused request must

* answer the documented status code with the fault body
  ``{"<faultName>": {"code": <status>, "message": "<text>"}}`` whose message names
  the field or object at fault,
* carry an ``x-openstack-request-id`` header and no traceback,
* leave the database exactly as it was (every table is compared before/after;
  only columns that background threads move are ignored, see ``VOLATILE``).

A module-scoped server is seeded with two projects (A: the caller, B: someone
else), each with plans, an available checkpoint, a restore, a verification and
operation logs, plus checkpoints of A in the states ``deleting``, ``deleted`` and
``protecting`` (the last two set directly in the database: the no-op provider
would otherwise finish them at once).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.functional._server import Server, karbor_server

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
PROJECT_TYPE = "OS::Keystone::Project"
FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               409: "conflictingRequest", 413: "overLimit", 424: "failedDependency"}
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "sqlalchemy.", "Error:\n")
TIMEOUT = 30
CALENDAR = "BEGIN:VEVENT\nRRULE:FREQ=WEEKLY;INTERVAL=1;\nEND:VEVENT"
UNKNOWN = "3f9a0c9e-7f62-4d36-9a4e-2f0d2b1a5c77"  # a well-formed id that names nothing

# --------------------------------------------------------------------------- helpers


class NoBody:
    def __repr__(self) -> str:
        return "<no body>"


NO_BODY = NoBody()


def call(srv: Server, method: str, path: str, *, token: str, body: Any = NO_BODY,
         url_project: str | None = None, project: str | None = None) -> requests.Response:
    """``path`` is relative to ``/v1/<url_project>``."""
    url = f"{srv.url}/v1/{url_project or project}{path}"
    headers = {"X-Auth-Token": token, "Accept": "application/json"}
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        kwargs["data"] = body
    elif not isinstance(body, NoBody):
        headers["Content-Type"] = "application/json"
        kwargs["data"] = json.dumps(body).encode()
    elif method in ("POST", "PUT"):
        headers["Content-Type"] = "application/json"
    return requests.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)


def assert_fault(resp: requests.Response, status: int | tuple[int, ...],
                 *words: str) -> dict[str, Any]:
    """The fault contract; returns the inner fault object."""
    statuses = status if isinstance(status, tuple) else (status,)
    where = f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text!r}"
    assert resp.status_code in statuses, where
    assert REQUEST_ID.match(resp.headers.get("x-openstack-request-id", "")), \
        f"no x-openstack-request-id: {dict(resp.headers)} ({where})"
    for marker in TRACEBACK_MARKERS:
        assert marker not in resp.text, f"traceback-like text in body: {where}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), where
    body = resp.json()
    name = FAULT_NAMES[resp.status_code]
    assert isinstance(body, dict) and list(body) == [name], where
    fault = body[name]
    assert isinstance(fault, dict) and set(fault) >= {"code", "message"}, where
    assert fault["code"] == resp.status_code and isinstance(fault["code"], int), where
    assert isinstance(fault["message"], str) and fault["message"].strip(), where
    message = fault["message"].lower()
    for word in words:
        assert word.lower() in message, f"message does not name {word!r}: {where}"
    return fault


# Columns background threads move on their own (heartbeats, the scheduler's bookkeeping).
VOLATILE = {"services": {"updated_at", "report_count"},
            "scheduled_operation_states": {"updated_at", "service_id", "end_time_for_run",
                                           "next_run_at", "last_occurrence"}}


def _table_rows(con: sqlite3.Connection, table: str) -> list[str]:
    columns = [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')
               if row[1] not in VOLATILE.get(table, ())]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return sorted(repr(row) for row in con.execute(f'SELECT {quoted} FROM "{table}"'))


def wait_idle(srv: Server, timeout: float = 30) -> None:
    """Until the protection worker has no pending or running operation."""
    deadline = time.monotonic() + timeout
    while True:
        con = sqlite3.connect(srv.db_path, timeout=30)
        try:
            busy = con.execute("SELECT count(*) FROM operations WHERE status IN "
                               "('pending', 'running')").fetchone()[0]
        finally:
            con.close()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{busy} operations still pending/running")
        time.sleep(0.1)


def snapshot(srv: Server) -> dict[str, list[str]]:
    wait_idle(srv)
    con = sqlite3.connect(srv.db_path, timeout=30)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {table: _table_rows(con, table) for table in sorted(tables)}
    finally:
        con.close()


def assert_unchanged(before: dict[str, list[str]], after: dict[str, list[str]],
                     what: str) -> None:
    changed = []
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, []), after.get(table, [])
        if old != new:
            added = sorted(set(new) - set(old))[:3]
            removed = sorted(set(old) - set(new))[:3]
            changed.append(f"{table}: {len(old)} -> {len(new)} rows; +{added} -{removed}")
    assert not changed, f"{what} changed the database:\n" + "\n".join(changed)


def set_checkpoint_status(srv: Server, checkpoint_id: str, status: str) -> None:
    """White-box: park a checkpoint in a state the no-op provider would leave at once."""
    con = sqlite3.connect(srv.db_path, timeout=30)
    try:
        with con:
            con.execute("UPDATE checkpoints SET status = ? WHERE id = ?", (status, checkpoint_id))
    finally:
        con.close()


# --------------------------------------------------------------------------- the seeded world


@dataclass
class World:
    srv: Server
    a: str
    b: str
    ids: dict[str, Any] = field(default_factory=dict)

    def token(self, who: str) -> str:
        return {"member": f"alice:{self.a}", "admin": f"admin:{self.a}",
                "member_b": f"bob:{self.b}"}[who]

    def project_of(self, who: str) -> str:
        return self.b if who == "member_b" else self.a

    def fmt(self, text: str) -> str:
        return text.format(a=self.a, b=self.b, unknown=UNKNOWN, noop=NOOP, **self.ids)

    def http(self, method: str, path: str, body: Any = NO_BODY, *, who: str = "member",
             expect: int = 200) -> Any:
        resp = call(self.srv, method, path, token=self.token(who), body=body,
                    project=self.project_of(who))
        assert resp.status_code == expect, f"seeding {method} {path}: {resp.text}"
        return resp.json() if resp.content else None


def plan_body(project: str, name: str = "plan", **extra: Any) -> dict[str, Any]:
    return {"plan": {"name": name, "provider_id": NOOP,
                     "resources": [{"id": project, "type": PROJECT_TYPE, "name": "project"}],
                     **extra}}


def _wait_checkpoint(world: World, who: str, checkpoint_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        cp = world.http("GET", f"/providers/{NOOP}/checkpoints/{checkpoint_id}",
                        who=who)["checkpoint"]
        if cp["status"] == status:
            return
        assert time.monotonic() < deadline, f"checkpoint {checkpoint_id} stuck in {cp}"
        time.sleep(0.1)


def _protect(world: World, who: str, plan_id: str, status: str = "available") -> str:
    cp = world.http("POST", f"/providers/{NOOP}/checkpoints",
                    {"checkpoint": {"plan_id": plan_id}}, who=who)["checkpoint"]["id"]
    _wait_checkpoint(world, who, cp, status)
    return cp


def _seed(world: World) -> None:
    ids = world.ids
    for who, suffix in (("member", "a"), ("member_b", "b")):
        project = world.project_of(who)
        plan = world.http("POST", "/plans", plan_body(project, f"plan-{suffix}"),
                          who=who)["plan"]["id"]
        ids[f"plan_{suffix}"] = plan
        cp = _protect(world, who, plan)
        ids[f"cp_{suffix}"] = cp
        ids[f"restore_{suffix}"] = world.http(
            "POST", "/restores", {"restore": {"provider_id": NOOP, "checkpoint_id": cp}},
            who=who)["restore"]["id"]
        ids[f"verification_{suffix}"] = world.http(
            "POST", "/verifications",
            {"verification": {"provider_id": NOOP, "checkpoint_id": cp}},
            who=who)["verification"]["id"]
    wait_idle(world.srv)
    ids["oplog_a"] = world.http("GET", "/operation_logs")["operation_logs"][0]["id"]
    ids["oplog_b"] = world.http("GET", "/operation_logs",
                                who="member_b")["operation_logs"][0]["id"]
    # Plans in other states.
    ids["plan_unprotected"] = world.http("POST", "/plans", plan_body(world.a, "bare"))["plan"]["id"]
    started = world.http("POST", "/plans", plan_body(world.a, "started"))["plan"]["id"]
    world.http("PUT", f"/plans/{started}", {"plan": {"status": "started"}})
    ids["plan_started"] = started
    gone = world.http("POST", "/plans", plan_body(world.a, "gone"))["plan"]["id"]
    world.http("DELETE", f"/plans/{gone}")
    ids["plan_deleted"] = gone
    # Checkpoints of A in the states that refuse delete / reset / restore.
    deleted = _protect(world, "member", ids["plan_a"])
    world.http("DELETE", f"/providers/{NOOP}/checkpoints/{deleted}")
    _wait_checkpoint(world, "member", deleted, "deleted")
    ids["cp_deleted"] = deleted
    for status in ("deleting", "protecting"):
        cp = _protect(world, "member", ids["plan_a"])
        set_checkpoint_status(world.srv, cp, status)
        ids[f"cp_{status}"] = cp
    # Services (ids are integers).
    services = world.http("GET", "/os-services", who="admin")["services"]
    ids["svc_engine"] = next(s["id"] for s in services
                             if s["binary"] == "karbor-operationengine")
    ids["svc_api"] = next(s["id"] for s in services if s["binary"] == "karbor-api")
    for who, suffix in (("member", "a"), ("member_b", "b")):
        ids[f"trigger_{suffix}"] = world.http("POST", "/triggers", trigger_body(),
                                              who=who)["trigger_info"]["id"]
    sched_plan = world.http("POST", "/plans", plan_body(world.a, "sched"))["plan"]["id"]
    ids["plan_scheduled"] = sched_plan
    ids["trigger_used"] = world.http("POST", "/triggers",
                                     trigger_body())["trigger_info"]["id"]
    ids["sched_a"] = world.http("POST", "/scheduled_operations", sched_body(
        ids["trigger_used"], sched_plan))["scheduled_operation"]["id"]
    plan_b2 = world.http("POST", "/plans", plan_body(world.b, "sched-b"),
                         who="member_b")["plan"]["id"]
    ids["sched_b"] = world.http("POST", "/scheduled_operations", sched_body(
        ids["trigger_b"], plan_b2), who="member_b")["scheduled_operation"]["id"]
    wait_idle(world.srv)


def trigger_body(**props: Any) -> dict[str, Any]:
    properties = {"format": "calendar", "pattern": CALENDAR, **props}
    return {"trigger_info": {"name": "weekly", "type": "time",
                             "properties": {k: v for k, v in properties.items()
                                            if v is not None}}}


def sched_body(trigger_id: str, plan_id: str, **extra: Any) -> dict[str, Any]:
    return {"scheduled_operation": {
        "name": "nightly", "operation_type": "protect", "trigger_id": trigger_id,
        "operation_definition": {"provider_id": NOOP, "plan_id": plan_id}, **extra}}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with karbor_server() as srv:
        w = World(srv=srv, a=uuid.uuid4().hex, b=uuid.uuid4().hex)
        _seed(w)
        yield w


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Neg:
    id: str
    method: str
    path: str
    status: int | tuple[int, ...]
    words: tuple[str, ...] = ()
    body: Any = NO_BODY
    who: str = "member"


def neg(id_: str, method: str, path: str, status: int | tuple[int, ...], *words: str,
        body: Any = NO_BODY, who: str = "member") -> Neg:
    return Neg(id_, method, path, status, tuple(words), body, who)


MALFORMED = b'{"plan": {"name": "x",'
PLAN_OK = {"name": "p", "provider_id": NOOP,
           "resources": [{"id": "r1", "type": PROJECT_TYPE, "name": "r"}]}


def _plan(**changes: Any) -> dict[str, Any]:
    body = dict(PLAN_OK)
    for key, value in changes.items():
        if value is DROP:
            body.pop(key)
        else:
            body[key] = value
    return {"plan": body}


DROP = object()
CPS = f"/providers/{NOOP}/checkpoints"

PLANS = [
    neg("plans-create-malformed-json", "POST", "/plans", 400, "malformed", body=MALFORMED),
    neg("plans-create-missing-body", "POST", "/plans", 400, "body"),
    neg("plans-create-deeply-nested-json", "POST", "/plans", 400, "malformed",
        body=b"[" * 100000),
    neg("plans-create-invalid-utf8", "POST", "/plans", 400, "malformed", body=b"\xff\xfe{}"),
    neg("plans-create-lone-surrogate", "POST", "/plans", 400,
        body=b'{"plan": {"name": "\\ud800", "provider_id": "' + NOOP.encode()
        + b'", "resources": [{"id": "r", "type": "t", "name": "n"}]}}'),
    neg("plans-create-body-not-object", "POST", "/plans", 400, "object", body=[]),
    neg("plans-create-missing-plan", "POST", "/plans", 400, "plan", body={}),
    neg("plans-create-plan-not-object", "POST", "/plans", 400, "plan", body={"plan": "x"}),
    neg("plans-create-missing-name", "POST", "/plans", 400, "name", body=_plan(name=DROP)),
    neg("plans-create-missing-provider", "POST", "/plans", 400, "provider_id",
        body=_plan(provider_id=DROP)),
    neg("plans-create-missing-resources", "POST", "/plans", 400, "resources",
        body=_plan(resources=DROP)),
    neg("plans-create-extra-top-field", "POST", "/plans", 400, "bogus",
        body={**_plan(), "bogus": 1}),
    neg("plans-create-extra-plan-field", "POST", "/plans", 400, "project_id",
        body=_plan(project_id="x")),
    neg("plans-create-name-int", "POST", "/plans", 400, "name", body=_plan(name=5)),
    neg("plans-create-name-null", "POST", "/plans", 400, "name", body=_plan(name=None)),
    neg("plans-create-name-blank", "POST", "/plans", 400, "name", body=_plan(name="   ")),
    neg("plans-create-name-too-long", "POST", "/plans", 400, "name", body=_plan(name="n" * 256)),
    neg("plans-create-description-list", "POST", "/plans", 400, "description",
        body=_plan(description=["x"])),
    neg("plans-create-resources-string", "POST", "/plans", 400, "resources",
        body=_plan(resources="r1")),
    neg("plans-create-resources-empty", "POST", "/plans", 400, "resources",
        body=_plan(resources=[])),
    neg("plans-create-resource-missing-id", "POST", "/plans", 400, "id",
        body=_plan(resources=[{"type": PROJECT_TYPE, "name": "r"}])),
    neg("plans-create-resource-extra-field", "POST", "/plans", 400, "bogus",
        body=_plan(resources=[{"id": "r", "type": PROJECT_TYPE, "name": "r", "bogus": 1}])),
    neg("plans-create-resource-duplicate", "POST", "/plans", 400, "r1",
        body=_plan(resources=[PLAN_OK["resources"][0], PLAN_OK["resources"][0]])),
    neg("plans-create-provider-not-uuid", "POST", "/plans", 400, "provider_id",
        body=_plan(provider_id="noop")),
    neg("plans-create-provider-unknown", "POST", "/plans", 400, "provider", UNKNOWN,
        body=_plan(provider_id=UNKNOWN)),
    neg("plans-create-parameters-list", "POST", "/plans", 400, "parameters",
        body=_plan(parameters=[])),
    neg("plans-create-parameters-unknown-type", "POST", "/plans", 400, "parameters",
        "OS::Bogus::Thing", body=_plan(parameters={"OS::Bogus::Thing": {}})),
    neg("plans-create-parameters-id-not-uuid", "POST", "/plans", 400, "uuid",
        body=_plan(parameters={f"{PROJECT_TYPE}#abc": {}})),
    neg("plans-create-parameters-unknown-property", "POST", "/plans", 400, "parameters",
        "speed", body=_plan(parameters={PROJECT_TYPE: {"speed": "fast"}})),
    neg("plans-list-limit-not-int", "GET", "/plans?limit=ten", 400, "limit"),
    neg("plans-list-limit-zero", "GET", "/plans?limit=0", 400, "limit"),
    neg("plans-list-offset-negative", "GET", "/plans?offset=-1", 400, "offset"),
    neg("plans-list-sort-bad-dir", "GET", "/plans?sort=name:sideways", 400, "sort direction"),
    neg("plans-list-sort-bad-key", "GET", "/plans?sort=bogus:asc", 400, "sort key", "bogus"),
    neg("plans-list-sort-and-sort-key", "GET", "/plans?sort=name&sort_key=name", 400, "sort"),
    neg("plans-list-all-tenants-not-bool", "GET", "/plans?all_tenants=maybe", 400,
        "all_tenants"),
    neg("plans-list-bad-regex", "GET", "/plans?name=%28", 400, "name"),
    neg("plans-list-marker-unknown", "GET", f"/plans?marker={UNKNOWN}", 404, UNKNOWN),
    neg("plans-list-marker-other-project", "GET", "/plans?marker={plan_b}", 404, "{plan_b}"),
    neg("plans-list-marker-deleted", "GET", "/plans?marker={plan_deleted}", 404,
        "{plan_deleted}"),
    neg("plans-show-not-uuid", "GET", "/plans/not-a-uuid", 400, "plan"),
    neg("plans-show-unknown", "GET", "/plans/{unknown}", 404, "plan", UNKNOWN),
    neg("plans-show-other-project", "GET", "/plans/{plan_b}", 404, "plan", "{plan_b}"),
    neg("plans-show-deleted", "GET", "/plans/{plan_deleted}", 404, "{plan_deleted}"),
    neg("plans-update-malformed-json", "PUT", "/plans/{plan_a}", 400, "malformed",
        body=MALFORMED),
    neg("plans-update-missing-body", "PUT", "/plans/{plan_a}", 400, "body"),
    neg("plans-update-missing-plan", "PUT", "/plans/{plan_a}", 400, "plan", body={}),
    neg("plans-update-empty-plan", "PUT", "/plans/{plan_a}", 400, "plan", body={"plan": {}}),
    neg("plans-update-provider-not-updatable", "PUT", "/plans/{plan_a}", 400, "provider_id",
        body={"plan": {"provider_id": NOOP}}),
    neg("plans-update-parameters-not-updatable", "PUT", "/plans/{plan_a}", 400, "parameters",
        body={"plan": {"parameters": {}}}),
    neg("plans-update-bad-status", "PUT", "/plans/{plan_a}", 400, "status",
        body={"plan": {"status": "paused"}}),
    neg("plans-update-name-int", "PUT", "/plans/{plan_a}", 400, "name",
        body={"plan": {"name": 7}}),
    neg("plans-update-resources-empty", "PUT", "/plans/{plan_a}", 400, "resources",
        body={"plan": {"resources": []}}),
    neg("plans-update-not-uuid", "PUT", "/plans/not-a-uuid", 400, "plan",
        body={"plan": {"name": "x"}}),
    neg("plans-update-unknown", "PUT", "/plans/{unknown}", 404, "plan", UNKNOWN,
        body={"plan": {"name": "x"}}),
    neg("plans-update-other-project", "PUT", "/plans/{plan_b}", 404, "{plan_b}",
        body={"plan": {"name": "x"}}),
    neg("plans-update-resources-of-started", "PUT", "/plans/{plan_started}", 409, "suspended",
        "{plan_started}", body={"plan": {"resources": PLAN_OK["resources"]}}),
    neg("plans-delete-not-uuid", "DELETE", "/plans/not-a-uuid", 400, "plan"),
    neg("plans-delete-unknown", "DELETE", "/plans/{unknown}", 404, "plan", UNKNOWN),
    neg("plans-delete-other-project", "DELETE", "/plans/{plan_b}", 404, "{plan_b}"),
    neg("plans-delete-deleted", "DELETE", "/plans/{plan_deleted}", 404, "{plan_deleted}"),
    neg("plans-post-to-member", "POST", "/plans/{plan_a}", 404),
]

PROTECTABLES = [
    neg("protectables-show-unknown-type", "GET", "/protectables/OS::Bogus::Thing", 400,
        "protectable type"),
    neg("protectables-instances-unknown-type", "GET", "/protectables/OS::Bogus::Thing/instances",
        400, "protectable type"),
    neg("protectables-instances-parameters-not-dict", "GET",
        f"/protectables/{PROJECT_TYPE}/instances?parameters=%5B1%5D", 400, "parameters"),
    neg("protectables-instances-limit-zero", "GET",
        f"/protectables/{PROJECT_TYPE}/instances?limit=0", 400, "limit"),
    neg("protectables-instance-unknown-type", "GET",
        "/protectables/OS::Bogus::Thing/instances/{a}", 400, "protectable type"),
    neg("protectables-instance-unknown", "GET",
        f"/protectables/{PROJECT_TYPE}/instances/nothing-here", 404, "nothing-here"),
    neg("protectables-instance-other-project", "GET",
        f"/protectables/{PROJECT_TYPE}/instances/{{b}}", 404, "{b}"),
    neg("protectables-instance-parameters-not-dict", "GET",
        f"/protectables/{PROJECT_TYPE}/instances/{{a}}?parameters=oops", 400, "parameters"),
]

PROVIDERS = [
    neg("providers-show-not-uuid", "GET", "/providers/noop", 400, "provider"),
    neg("providers-show-unknown", "GET", "/providers/{unknown}", 404, "provider", UNKNOWN),
    neg("providers-list-limit-not-int", "GET", "/providers?limit=x", 400, "limit"),
    neg("providers-list-marker-unknown", "GET", f"/providers?marker={UNKNOWN}", 404, UNKNOWN),
]

CHECKPOINTS = [
    neg("checkpoints-list-provider-not-uuid", "GET", "/providers/noop/checkpoints", 400,
        "provider"),
    neg("checkpoints-list-provider-unknown", "GET", "/providers/{unknown}/checkpoints", 404,
        "provider", UNKNOWN),
    neg("checkpoints-list-bad-start-date", "GET", CPS + "?start_date=yesterday", 400,
        "start_date"),
    neg("checkpoints-list-bad-end-date", "GET", CPS + "?end_date=2020-02-30", 400, "end_date"),
    neg("checkpoints-list-limit-negative", "GET", CPS + "?limit=-5", 400, "limit"),
    neg("checkpoints-list-marker-unknown", "GET", CPS + f"?marker={UNKNOWN}", 404, UNKNOWN),
    neg("checkpoints-list-marker-other-project", "GET", CPS + "?marker={cp_b}", (403, 404),
        "{cp_b}"),
    neg("checkpoints-list-sort-bad-dir", "GET", CPS + "?sort=created_at:up", 400, "sort"),
    neg("checkpoints-create-malformed-json", "POST", CPS, 400, "malformed", body=MALFORMED),
    neg("checkpoints-create-missing-body", "POST", CPS, 400, "body"),
    neg("checkpoints-create-missing-checkpoint", "POST", CPS, 400, "checkpoint", body={}),
    neg("checkpoints-create-missing-plan-id", "POST", CPS, 400, "plan_id",
        body={"checkpoint": {}}),
    neg("checkpoints-create-plan-id-not-uuid", "POST", CPS, 400, "plan_id",
        body={"checkpoint": {"plan_id": "my-plan"}}),
    neg("checkpoints-create-plan-id-int", "POST", CPS, 400, "plan_id",
        body={"checkpoint": {"plan_id": 5}}),
    neg("checkpoints-create-extra-field", "POST", CPS, 400, "bogus",
        body={"checkpoint": {"plan_id": "{plan_a}", "bogus": 1}}),
    neg("checkpoints-create-extra-info-list", "POST", CPS, 400, "extra_info",
        body={"checkpoint": {"plan_id": "{plan_a}", "extra_info": ["x"]}}),
    neg("checkpoints-create-plan-unknown", "POST", CPS, 404, "plan", UNKNOWN,
        body={"checkpoint": {"plan_id": UNKNOWN}}),
    neg("checkpoints-create-plan-other-project", "POST", CPS, 404, "plan", "{plan_b}",
        body={"checkpoint": {"plan_id": "{plan_b}"}}),
    neg("checkpoints-create-plan-deleted", "POST", CPS, 404, "{plan_deleted}",
        body={"checkpoint": {"plan_id": "{plan_deleted}"}}),
    neg("checkpoints-create-provider-not-uuid", "POST", "/providers/noop/checkpoints", 400,
        "provider", body={"checkpoint": {"plan_id": "{plan_a}"}}),
    neg("checkpoints-create-provider-unknown", "POST", "/providers/{unknown}/checkpoints", 404,
        "provider", UNKNOWN, body={"checkpoint": {"plan_id": "{plan_a}"}}),
    neg("checkpoints-show-not-uuid", "GET", CPS + "/not-a-uuid", 400, "checkpoint"),
    neg("checkpoints-show-provider-not-uuid", "GET", "/providers/noop/checkpoints/{cp_a}", 400,
        "provider"),
    neg("checkpoints-show-unknown", "GET", CPS + "/{unknown}", 404, "checkpoint", UNKNOWN),
    neg("checkpoints-show-other-project", "GET", CPS + "/{cp_b}", 403, "checkpoint", "{cp_b}"),
    neg("checkpoints-delete-not-uuid", "DELETE", CPS + "/not-a-uuid", 400, "checkpoint"),
    neg("checkpoints-delete-unknown", "DELETE", CPS + "/{unknown}", 404, "checkpoint", UNKNOWN),
    neg("checkpoints-delete-other-project", "DELETE", CPS + "/{cp_b}", 403, "{cp_b}"),
    neg("checkpoints-delete-deleting", "DELETE", CPS + "/{cp_deleting}", 409, "{cp_deleting}",
        "deleting"),
    neg("checkpoints-delete-deleted", "DELETE", CPS + "/{cp_deleted}", 409, "{cp_deleted}",
        "deleted"),
    neg("checkpoints-delete-protecting", "DELETE", CPS + "/{cp_protecting}", 409,
        "{cp_protecting}", "protecting"),
    neg("checkpoints-reset-malformed-json", "PUT", CPS + "/{cp_a}", 400, "malformed",
        body=MALFORMED),
    neg("checkpoints-reset-missing-body", "PUT", CPS + "/{cp_a}", 400, "body"),
    neg("checkpoints-reset-missing-action", "PUT", CPS + "/{cp_a}", 400, "os-resetState",
        body={}),
    neg("checkpoints-reset-missing-state", "PUT", CPS + "/{cp_a}", 400, "state",
        body={"os-resetState": {}}),
    neg("checkpoints-reset-bad-state", "PUT", CPS + "/{cp_a}", 400, "state",
        body={"os-resetState": {"state": "deleted"}}),
    neg("checkpoints-reset-state-int", "PUT", CPS + "/{cp_a}", 400, "state",
        body={"os-resetState": {"state": 1}}),
    neg("checkpoints-reset-extra-field", "PUT", CPS + "/{cp_a}", 400, "bogus",
        body={"os-resetState": {"state": "error"}, "bogus": 1}),
    neg("checkpoints-reset-not-uuid", "PUT", CPS + "/not-a-uuid", 400, "checkpoint",
        body={"os-resetState": {"state": "error"}}),
    neg("checkpoints-reset-unknown", "PUT", CPS + "/{unknown}", 404, UNKNOWN,
        body={"os-resetState": {"state": "error"}}),
    neg("checkpoints-reset-other-project", "PUT", CPS + "/{cp_b}", 403, "{cp_b}",
        body={"os-resetState": {"state": "error"}}),
    neg("checkpoints-reset-from-deleted", "PUT", CPS + "/{cp_deleted}", 409, "{cp_deleted}",
        "deleted", body={"os-resetState": {"state": "available"}}),
    neg("checkpoints-reset-from-deleting", "PUT", CPS + "/{cp_deleting}", 409,
        "{cp_deleting}", "deleting", body={"os-resetState": {"state": "available"}}),
    neg("checkpoints-reset-from-protecting", "PUT", CPS + "/{cp_protecting}", 409,
        "{cp_protecting}", "protecting", body={"os-resetState": {"state": "error"}}),
    neg("checkpoints-copy-malformed-json", "POST", CPS + "/action", 400, "malformed",
        body=MALFORMED),
    neg("checkpoints-copy-missing-body", "POST", CPS + "/action", 400, "body"),
    neg("checkpoints-copy-missing-copy", "POST", CPS + "/action", 400, "copy", body={}),
    neg("checkpoints-copy-missing-plan-id", "POST", CPS + "/action", 400, "plan_id",
        body={"copy": {}}),
    neg("checkpoints-copy-plan-id-not-uuid", "POST", CPS + "/action", 400, "plan_id",
        body={"copy": {"plan_id": "x"}}),
    neg("checkpoints-copy-extra-field", "POST", CPS + "/action", 400, "bogus",
        body={"copy": {"plan_id": "{plan_a}", "bogus": 1}}),
    neg("checkpoints-copy-empty-list", "POST", CPS + "/action", 400, "copy",
        body={"copy": []}),
    neg("checkpoints-copy-plan-unknown", "POST", CPS + "/action", 404, "plan", UNKNOWN,
        body={"copy": {"plan_id": UNKNOWN}}),
    neg("checkpoints-copy-plan-other-project", "POST", CPS + "/action", 404, "{plan_b}",
        body={"copy": {"plan_id": "{plan_b}"}}),
    neg("checkpoints-copy-plan-not-protected", "POST", CPS + "/action", 400,
        "{plan_unprotected}", "protected", body={"copy": {"plan_id": "{plan_unprotected}"}}),
    neg("checkpoints-copy-provider-mismatch", "POST", CPS + "/action", 400, "provider",
        body={"copy": {"plan_id": "{plan_a}", "provider_id": UNKNOWN}}),
    neg("checkpoints-copy-provider-not-uuid", "POST", "/providers/noop/checkpoints/action",
        400, "provider", body={"copy": {"plan_id": "{plan_a}"}}),
]


def _records(kind: str, key: str) -> list[Neg]:
    """Restores and verifications share their contract."""
    base = f"/{kind}s"
    ok = {"provider_id": NOOP, "checkpoint_id": "{cp_a}"}

    def body(**changes: Any) -> dict[str, Any]:
        inner = dict(ok)
        for k, v in changes.items():
            if v is DROP:
                inner.pop(k)
            else:
                inner[k] = v
        return {key: inner}

    cases = [
        neg(f"{kind}s-create-malformed-json", "POST", base, 400, "malformed", body=MALFORMED),
        neg(f"{kind}s-create-missing-body", "POST", base, 400, "body"),
        neg(f"{kind}s-create-missing-wrapper", "POST", base, 400, key, body={}),
        neg(f"{kind}s-create-missing-provider", "POST", base, 400, "provider_id",
            body=body(provider_id=DROP)),
        neg(f"{kind}s-create-missing-checkpoint", "POST", base, 400, "checkpoint_id",
            body=body(checkpoint_id=DROP)),
        neg(f"{kind}s-create-extra-field", "POST", base, 400, "bogus", body=body(bogus=1)),
        neg(f"{kind}s-create-provider-not-uuid", "POST", base, 400, "provider_id",
            body=body(provider_id="noop")),
        neg(f"{kind}s-create-checkpoint-not-uuid", "POST", base, 400, "checkpoint_id",
            body=body(checkpoint_id="cp")),
        neg(f"{kind}s-create-checkpoint-int", "POST", base, 400, "checkpoint_id",
            body=body(checkpoint_id=12)),
        neg(f"{kind}s-create-parameters-list", "POST", base, 400, "parameters",
            body=body(parameters=[1])),
        neg(f"{kind}s-create-parameters-unknown-type", "POST", base, 400, "parameters",
            body=body(parameters={"OS::Bogus::Thing": {}})),
        neg(f"{kind}s-create-provider-unknown", "POST", base, 400, "provider", UNKNOWN,
            body=body(provider_id=UNKNOWN)),
        neg(f"{kind}s-create-checkpoint-unknown", "POST", base, 404, "checkpoint", UNKNOWN,
            body=body(checkpoint_id=UNKNOWN)),
        neg(f"{kind}s-create-checkpoint-other-project", "POST", base, 403, "{cp_b}",
            body=body(checkpoint_id="{cp_b}")),
        neg(f"{kind}s-create-checkpoint-deleted", "POST", base, 409, "{cp_deleted}",
            "available", body=body(checkpoint_id="{cp_deleted}")),
        neg(f"{kind}s-create-checkpoint-protecting", "POST", base, 409, "{cp_protecting}",
            "available", body=body(checkpoint_id="{cp_protecting}")),
        neg(f"{kind}s-create-checkpoint-deleting", "POST", base, 409, "{cp_deleting}",
            "available", body=body(checkpoint_id="{cp_deleting}")),
        neg(f"{kind}s-show-not-uuid", "GET", base + "/not-a-uuid", 400, kind),
        neg(f"{kind}s-show-unknown", "GET", base + "/{unknown}", 404, kind, UNKNOWN),
        neg(f"{kind}s-show-other-project", "GET", base + f"/{{{kind}_b}}", 404,
            f"{{{kind}_b}}"),
        neg(f"{kind}s-list-limit-not-int", "GET", base + "?limit=many", 400, "limit"),
        neg(f"{kind}s-list-marker-unknown", "GET", base + f"?marker={UNKNOWN}", 404, UNKNOWN),
        neg(f"{kind}s-list-marker-other-project", "GET", base + f"?marker={{{kind}_b}}", 404,
            f"{{{kind}_b}}"),
        neg(f"{kind}s-delete-unsupported", "DELETE", base + f"/{{{kind}_a}}", 404),
        neg(f"{kind}s-update-unsupported", "PUT", base + f"/{{{kind}_a}}", 404,
            body={key: {}}),
    ]
    if kind == "restore":
        cases += [
            neg("restores-create-target-int", "POST", base, 400, "restore_target",
                body=body(restore_target=5)),
            neg("restores-create-auth-list", "POST", base, 400, "restore_auth",
                body=body(restore_auth=["u", "p"])),
        ]
    return cases


OPERATION_LOGS = [
    neg("operation-logs-show-not-uuid", "GET", "/operation_logs/not-a-uuid", 400,
        "operation log"),
    neg("operation-logs-show-unknown", "GET", "/operation_logs/{unknown}", 404, UNKNOWN),
    neg("operation-logs-show-other-project", "GET", "/operation_logs/{oplog_b}", 404,
        "{oplog_b}"),
    neg("operation-logs-list-limit-zero", "GET", "/operation_logs?limit=0", 400, "limit"),
    neg("operation-logs-list-marker-unknown", "GET", f"/operation_logs?marker={UNKNOWN}", 404,
        UNKNOWN),
    neg("operation-logs-list-marker-other-project", "GET", "/operation_logs?marker={oplog_b}",
        404, "{oplog_b}"),
]

_TRIGGER = trigger_body()["trigger_info"]


def _trigger(**changes: Any) -> dict[str, Any]:
    inner = dict(_TRIGGER)
    props = dict(inner["properties"])
    for k, v in changes.items():
        if k.startswith("p_"):
            if v is DROP:
                props.pop(k[2:])
            else:
                props[k[2:]] = v
        elif v is DROP:
            inner.pop(k)
        else:
            inner[k] = v
    if "properties" in inner:
        inner["properties"] = props
    return {"trigger_info": inner}


TRIGGERS = [
    neg("triggers-create-malformed-json", "POST", "/triggers", 400, "malformed", body=MALFORMED),
    neg("triggers-create-missing-body", "POST", "/triggers", 400, "body"),
    neg("triggers-create-missing-wrapper", "POST", "/triggers", 400, "trigger_info", body={}),
    neg("triggers-create-missing-name", "POST", "/triggers", 400, "name",
        body=_trigger(name=DROP)),
    neg("triggers-create-missing-type", "POST", "/triggers", 400, "type",
        body=_trigger(type=DROP)),
    neg("triggers-create-missing-properties", "POST", "/triggers", 400, "properties",
        body=_trigger(properties=DROP)),
    neg("triggers-create-missing-pattern", "POST", "/triggers", 400, "pattern",
        body=_trigger(p_pattern=DROP)),
    neg("triggers-create-extra-field", "POST", "/triggers", 400, "bogus",
        body=_trigger(bogus=1)),
    neg("triggers-create-extra-property", "POST", "/triggers", 400, "bogus",
        body=_trigger(p_bogus="1")),
    neg("triggers-create-name-int", "POST", "/triggers", 400, "name", body=_trigger(name=3)),
    neg("triggers-create-bad-type", "POST", "/triggers", 400, "type", "event",
        body=_trigger(type="event")),
    neg("triggers-create-bad-pattern", "POST", "/triggers", 400, "pattern",
        body=_trigger(p_pattern="every tuesday")),
    neg("triggers-create-bad-start-time", "POST", "/triggers", 400, "start_time",
        body=_trigger(p_start_time="next tuesday")),
    neg("triggers-create-window-not-int", "POST", "/triggers", 400, "window",
        body=_trigger(p_window="soon")),
    neg("triggers-create-window-list", "POST", "/triggers", 400, "window",
        body=_trigger(p_window=[1])),
    neg("triggers-list-limit-zero", "GET", "/triggers?limit=0", 400, "limit"),
    neg("triggers-list-bad-regex", "GET", "/triggers?name=%5B", 400, "name"),
    neg("triggers-list-marker-unknown", "GET", f"/triggers?marker={UNKNOWN}", 404, UNKNOWN),
    neg("triggers-list-marker-other-project", "GET", "/triggers?marker={trigger_b}", (403, 404),
        "{trigger_b}"),
    neg("triggers-show-not-uuid", "GET", "/triggers/not-a-uuid", 400, "trigger"),
    neg("triggers-show-unknown", "GET", "/triggers/{unknown}", 404, "trigger", UNKNOWN),
    neg("triggers-show-other-project", "GET", "/triggers/{trigger_b}", (403, 404), "trigger"),
    neg("triggers-update-malformed-json", "PUT", "/triggers/{trigger_a}", 400, "malformed",
        body=MALFORMED),
    neg("triggers-update-missing-body", "PUT", "/triggers/{trigger_a}", 400, "body"),
    neg("triggers-update-empty", "PUT", "/triggers/{trigger_a}", 400, "trigger_info",
        body={"trigger_info": {}}),
    neg("triggers-update-extra-field", "PUT", "/triggers/{trigger_a}", 400, "bogus",
        body={"trigger_info": {"bogus": 1}}),
    neg("triggers-update-bad-pattern", "PUT", "/triggers/{trigger_a}", 400, "pattern",
        body={"trigger_info": {"properties": {"pattern": "never"}}}),
    neg("triggers-update-not-uuid", "PUT", "/triggers/not-a-uuid", 400, "trigger",
        body={"trigger_info": {"name": "x"}}),
    neg("triggers-update-unknown", "PUT", "/triggers/{unknown}", 404, UNKNOWN,
        body={"trigger_info": {"name": "x"}}),
    neg("triggers-update-other-project", "PUT", "/triggers/{trigger_b}", (403, 404), "trigger",
        body={"trigger_info": {"name": "x"}}),
    neg("triggers-delete-not-uuid", "DELETE", "/triggers/not-a-uuid", 400, "trigger"),
    neg("triggers-delete-unknown", "DELETE", "/triggers/{unknown}", 404, UNKNOWN),
    neg("triggers-delete-other-project", "DELETE", "/triggers/{trigger_b}", (403, 404),
        "trigger"),
    neg("triggers-delete-in-use", "DELETE", "/triggers/{trigger_used}", 424, "trigger"),
]


def _sched(**changes: Any) -> dict[str, Any]:
    body = sched_body("{trigger_a}", "{plan_a}")
    inner = body["scheduled_operation"]
    definition = dict(inner["operation_definition"])
    for k, v in changes.items():
        if k.startswith("d_"):
            if v is DROP:
                definition.pop(k[2:])
            else:
                definition[k[2:]] = v
        elif v is DROP:
            inner.pop(k)
        else:
            inner[k] = v
    if "operation_definition" in inner:
        inner["operation_definition"] = definition
    return body


SO = "/scheduled_operations"
SCHEDULED_OPERATIONS = [
    neg("scheduled-create-malformed-json", "POST", SO, 400, "malformed", body=MALFORMED),
    neg("scheduled-create-missing-body", "POST", SO, 400, "body"),
    neg("scheduled-create-missing-wrapper", "POST", SO, 400, "scheduled_operation", body={}),
    neg("scheduled-create-missing-name", "POST", SO, 400, "name", body=_sched(name=DROP)),
    neg("scheduled-create-missing-type", "POST", SO, 400, "operation_type",
        body=_sched(operation_type=DROP)),
    neg("scheduled-create-missing-trigger", "POST", SO, 400, "trigger_id",
        body=_sched(trigger_id=DROP)),
    neg("scheduled-create-missing-definition", "POST", SO, 400, "operation_definition",
        body=_sched(operation_definition=DROP)),
    neg("scheduled-create-definition-missing-plan", "POST", SO, 400, "plan_id",
        body=_sched(d_plan_id=DROP)),
    neg("scheduled-create-extra-field", "POST", SO, 400, "bogus", body=_sched(bogus=1)),
    neg("scheduled-create-trigger-not-uuid", "POST", SO, 400, "trigger_id",
        body=_sched(trigger_id="t1")),
    neg("scheduled-create-bad-type", "POST", SO, 400, "operation type", "backup",
        body=_sched(operation_type="backup")),
    neg("scheduled-create-trigger-unknown", "POST", SO, 404, "trigger", UNKNOWN,
        body=_sched(trigger_id=UNKNOWN)),
    neg("scheduled-create-trigger-other-project", "POST", SO, (400, 403, 404), "trigger",
        body=_sched(trigger_id="{trigger_b}")),
    neg("scheduled-create-plan-unknown", "POST", SO, (400, 404), "plan",
        body=_sched(d_plan_id=UNKNOWN)),
    neg("scheduled-create-plan-other-project", "POST", SO, (400, 404), "plan",
        body=_sched(d_plan_id="{plan_b}")),
    neg("scheduled-create-provider-unknown", "POST", SO, 400, "provider",
        body=_sched(d_provider_id=UNKNOWN)),
    neg("scheduled-create-max-backups-not-int", "POST", SO, 400, "max_backups",
        body=_sched(operation_type="retention_protect", d_max_backups="lots")),
    neg("scheduled-list-limit-zero", "GET", SO + "?limit=0", 400, "limit"),
    neg("scheduled-list-marker-unknown", "GET", SO + f"?marker={UNKNOWN}", 404, UNKNOWN),
    neg("scheduled-list-marker-other-project", "GET", SO + "?marker={sched_b}", (403, 404),
        "{sched_b}"),
    neg("scheduled-show-not-uuid", "GET", SO + "/not-a-uuid", 400, "operation"),
    neg("scheduled-show-unknown", "GET", SO + "/{unknown}", 404, UNKNOWN),
    neg("scheduled-show-other-project", "GET", SO + "/{sched_b}", (403, 404), "operation"),
    neg("scheduled-delete-not-uuid", "DELETE", SO + "/not-a-uuid", 400, "operation"),
    neg("scheduled-delete-unknown", "DELETE", SO + "/{unknown}", 404, UNKNOWN),
    neg("scheduled-delete-other-project", "DELETE", SO + "/{sched_b}", (403, 404),
        "operation"),
    neg("scheduled-update-empty", "PUT", SO + "/{sched_a}", 400, "scheduled_operation",
        body={"scheduled_operation": {}}),
    neg("scheduled-update-extra-field", "PUT", SO + "/{sched_a}", 400, "trigger_id",
        body={"scheduled_operation": {"trigger_id": "{trigger_a}"}}),
    neg("scheduled-update-other-project", "PUT", SO + "/{sched_b}", (403, 404), "operation",
        body={"scheduled_operation": {"enabled": False}}),
]

SERVICES = [
    neg("services-list-member", "GET", "/os-services", 403, "service:get_all"),
    neg("services-update-member", "PUT", "/os-services/{svc_engine}", 403, "service:update",
        body={"status": "disabled"}),
    neg("services-update-malformed-json", "PUT", "/os-services/{svc_engine}", 400, "malformed",
        body=MALFORMED, who="admin"),
    neg("services-update-missing-body", "PUT", "/os-services/{svc_engine}", 400, "body",
        who="admin"),
    neg("services-update-missing-status", "PUT", "/os-services/{svc_engine}", 400, "status",
        body={}, who="admin"),
    neg("services-update-bad-status", "PUT", "/os-services/{svc_engine}", 400, "status",
        body={"status": "paused"}, who="admin"),
    neg("services-update-extra-field", "PUT", "/os-services/{svc_engine}", 400, "bogus",
        body={"status": "disabled", "bogus": 1}, who="admin"),
    neg("services-update-reason-too-long", "PUT", "/os-services/{svc_engine}", 400,
        "disabled_reason", body={"status": "disabled", "disabled_reason": "r" * 256},
        who="admin"),
    neg("services-update-enabled-with-reason", "PUT", "/os-services/{svc_engine}", 400,
        "disabled_reason", body={"status": "enabled", "disabled_reason": "why"}, who="admin"),
    neg("services-update-not-engine", "PUT", "/os-services/{svc_api}", 400, "karbor-api",
        body={"status": "disabled"}, who="admin"),
    neg("services-update-unknown", "PUT", "/os-services/987654", 404, "987654",
        body={"status": "disabled"}, who="admin"),
    neg("services-update-not-int", "PUT", "/os-services/abc", 404, "abc",
        body={"status": "disabled"}, who="admin"),
    neg("services-update-huge-id", "PUT", "/os-services/9223372036854775808", 404,
        "9223372036854775808", body={"status": "disabled"}, who="admin"),
]

QUOTAS = [
    neg("quotas-update-member", "PUT", "/quotas/{a}", 403, "quota:update",
        body={"quota": {"plans": 5}}),
    neg("quotas-delete-member", "DELETE", "/quotas/{a}", 403, "quota:delete"),
    neg("quotas-show-other-project", "GET", "/quotas/{b}", 403, "quota"),
    neg("quotas-detail-other-project", "GET", "/quotas/{b}/detail", 403, "quota"),
    neg("quotas-defaults-other-project", "GET", "/quotas/{b}/defaults", 403, "quota"),
    neg("quotas-show-not-uuid", "GET", "/quotas/not-a-project", 400, "project", who="admin"),
    neg("quotas-update-not-uuid", "PUT", "/quotas/not-a-project", 400, "project",
        body={"quota": {"plans": 5}}, who="admin"),
    neg("quotas-delete-not-uuid", "DELETE", "/quotas/not-a-project", 400, "project",
        who="admin"),
    neg("quotas-update-malformed-json", "PUT", "/quotas/{a}", 400, "malformed",
        body=MALFORMED, who="admin"),
    neg("quotas-update-missing-body", "PUT", "/quotas/{a}", 400, "body", who="admin"),
    neg("quotas-update-missing-quota", "PUT", "/quotas/{a}", 400, "quota", body={},
        who="admin"),
    neg("quotas-update-extra-field", "PUT", "/quotas/{a}", 400, "bogus",
        body={"quota": {"plans": 5}, "bogus": 1}, who="admin"),
    neg("quotas-update-quota-list", "PUT", "/quotas/{a}", 400, "quota", body={"quota": [5]},
        who="admin"),
    neg("quotas-update-not-integer", "PUT", "/quotas/{a}", 400, "plans",
        body={"quota": {"plans": "many"}}, who="admin"),
    neg("quotas-update-float", "PUT", "/quotas/{a}", 400, "plans",
        body={"quota": {"plans": 1.5}}, who="admin"),
    neg("quotas-update-bool", "PUT", "/quotas/{a}", 400, "plans",
        body={"quota": {"plans": True}}, who="admin"),
    neg("quotas-update-below-minus-one", "PUT", "/quotas/{a}", 400, "plans",
        body={"quota": {"plans": -2}}, who="admin"),
    neg("quotas-update-huge", "PUT", "/quotas/{a}", 400, "plans",
        body={"quota": {"plans": 2 ** 70}}, who="admin"),
    neg("quota-classes-update-member", "PUT", "/quota_classes/gold", 403, "quota_class:update",
        body={"quota_class": {"plans": 5}}),
    neg("quota-classes-update-malformed-json", "PUT", "/quota_classes/gold", 400, "malformed",
        body=MALFORMED, who="admin"),
    neg("quota-classes-update-missing-body", "PUT", "/quota_classes/gold", 400, "body",
        who="admin"),
    neg("quota-classes-update-missing-wrapper", "PUT", "/quota_classes/gold", 400,
        "quota_class", body={"quota": {"plans": 5}}, who="admin"),
    neg("quota-classes-update-not-integer", "PUT", "/quota_classes/gold", 400, "plans",
        body={"quota_class": {"plans": "x"}}, who="admin"),
    neg("quota-classes-update-below-minus-one", "PUT", "/quota_classes/gold", 400,
        "checkpoints",
        body={"quota_class": {"checkpoints": -5}}, who="admin"),
    neg("quota-classes-update-huge", "PUT", "/quota_classes/gold", 400, "plans",
        body={"quota_class": {"plans": 2 ** 70}}, who="admin"),
    neg("quota-classes-show-name-too-long", "GET", "/quota_classes/" + "c" * 256, 400,
        "class_name"),
]

# Numbers the database cannot hold and dates at the end of the calendar: a clean
# answer (200 or 400), never a 500.
EDGES = [
    neg("plans-list-huge-offset", "GET", f"/plans?offset={2 ** 70}", (200, 400), "offset"),
    neg("plans-list-huge-limit", "GET", f"/plans?limit={2 ** 70}", (200, 400), "limit"),
    neg("restores-list-huge-offset", "GET", f"/restores?offset={2 ** 70}", (200, 400),
        "offset"),
    neg("verifications-list-huge-offset", "GET", f"/verifications?offset={2 ** 70}",
        (200, 400), "offset"),
    neg("operation-logs-list-huge-offset", "GET", f"/operation_logs?offset={2 ** 70}",
        (200, 400), "offset"),
    neg("checkpoints-list-huge-offset", "GET", CPS + f"?offset={2 ** 70}", (200, 400),
        "offset"),
    neg("checkpoints-list-end-of-calendar", "GET", CPS + "?end_date=9999-12-31", (200, 400),
        "end_date"),
    neg("triggers-list-huge-offset", "GET", f"/triggers?offset={2 ** 70}", (200, 400),
        "offset"),
    neg("scheduled-list-huge-offset", "GET", SO + f"?offset={2 ** 70}", (200, 400), "offset"),
]

CASES = (PLANS + PROTECTABLES + PROVIDERS + CHECKPOINTS + _records("restore", "restore")
         + _records("verification", "verification") + OPERATION_LOGS + TRIGGERS
         + SCHEDULED_OPERATIONS + SERVICES + QUOTAS)


def _format_body(world: World, body: Any) -> Any:
    if isinstance(body, str):
        return world.fmt(body)
    if isinstance(body, dict):
        return {world.fmt(k): _format_body(world, v) for k, v in body.items()}
    if isinstance(body, list):
        return [_format_body(world, v) for v in body]
    return body


def _run(world: World, case: Neg) -> requests.Response:
    path = world.fmt(case.path)
    body = _format_body(world, case.body)
    before = snapshot(world.srv)
    resp = call(world.srv, case.method, path, token=world.token(case.who), body=body,
                project=world.project_of(case.who))
    after = snapshot(world.srv)
    assert resp.status_code < 500, \
        f"server error: {case.method} {path} {repr(body)[:300]} -> {resp.status_code} {resp.text}"
    assert_unchanged(before, after, f"{case.method} {path} -> {resp.status_code}")
    return resp


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_refused(world: World, case: Neg) -> None:
    resp = _run(world, case)
    assert_fault(resp, case.status, *(world.fmt(w) for w in case.words))


@pytest.mark.parametrize("case", EDGES, ids=lambda c: c.id)
def test_edge_values_are_not_server_errors(world: World, case: Neg) -> None:
    resp = _run(world, case)
    assert resp.status_code in case.status, f"{case.path}: {resp.status_code} {resp.text}"
    if resp.status_code >= 400:
        assert_fault(resp, 400, *case.words)
    else:
        assert REQUEST_ID.match(resp.headers.get("x-openstack-request-id", ""))


# --------------------------------------------------------------------------- URL project


ENDPOINTS = [
    ("GET", "/plans", NO_BODY), ("POST", "/plans", _plan()),
    ("GET", "/plans/{plan_a}", NO_BODY), ("PUT", "/plans/{plan_a}", {"plan": {"name": "x"}}),
    ("DELETE", "/plans/{plan_a}", NO_BODY),
    ("GET", "/protectables", NO_BODY), ("GET", f"/protectables/{PROJECT_TYPE}", NO_BODY),
    ("GET", f"/protectables/{PROJECT_TYPE}/instances", NO_BODY),
    ("GET", f"/protectables/{PROJECT_TYPE}/instances/{{a}}", NO_BODY),
    ("GET", "/providers", NO_BODY), ("GET", f"/providers/{NOOP}", NO_BODY),
    ("GET", CPS, NO_BODY), ("POST", CPS, {"checkpoint": {"plan_id": "{plan_a}"}}),
    ("GET", CPS + "/{cp_a}", NO_BODY), ("DELETE", CPS + "/{cp_a}", NO_BODY),
    ("PUT", CPS + "/{cp_a}", {"os-resetState": {"state": "error"}}),
    ("POST", CPS + "/action", {"copy": {"plan_id": "{plan_a}"}}),
    ("GET", "/restores", NO_BODY),
    ("POST", "/restores", {"restore": {"provider_id": NOOP, "checkpoint_id": "{cp_a}"}}),
    ("GET", "/restores/{restore_a}", NO_BODY),
    ("GET", "/verifications", NO_BODY),
    ("POST", "/verifications",
     {"verification": {"provider_id": NOOP, "checkpoint_id": "{cp_a}"}}),
    ("GET", "/verifications/{verification_a}", NO_BODY),
    ("GET", "/operation_logs", NO_BODY), ("GET", "/operation_logs/{oplog_a}", NO_BODY),
    ("GET", "/triggers", NO_BODY), ("POST", "/triggers", trigger_body()),
    ("GET", "/triggers/{trigger_a}", NO_BODY),
    ("PUT", "/triggers/{trigger_a}", {"trigger_info": {"name": "x"}}),
    ("DELETE", "/triggers/{trigger_a}", NO_BODY),
    ("GET", SO, NO_BODY), ("POST", SO, _sched()),
    ("GET", SO + "/{sched_a}", NO_BODY), ("DELETE", SO + "/{sched_a}", NO_BODY),
    ("GET", "/os-services", NO_BODY),
    ("PUT", "/os-services/{svc_engine}", {"status": "disabled"}),
    ("GET", "/quotas/{a}", NO_BODY), ("GET", "/quotas/{a}/detail", NO_BODY),
    ("GET", "/quotas/{a}/defaults", NO_BODY), ("PUT", "/quotas/{a}", {"quota": {"plans": 9}}),
    ("DELETE", "/quotas/{a}", NO_BODY),
    ("GET", "/quota_classes/default", NO_BODY),
    ("PUT", "/quota_classes/default", {"quota_class": {"plans": 9}}),
]


@pytest.mark.parametrize("who", ["member", "admin"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
def test_url_project_must_match_token_project(world: World, endpoint, who: str) -> None:
    method, template, body = endpoint
    path = world.fmt(template)
    before = snapshot(world.srv)
    resp = call(world.srv, method, path, token=world.token(who),
                body=_format_body(world, body), url_project=world.b)
    after = snapshot(world.srv)
    assert_fault(resp, 400, "url")
    assert_unchanged(before, after, f"{method} {path} with a foreign URL project")


# --------------------------------------------------------------------------- quotas


def test_plan_quota_exceeded(world: World) -> None:
    project = uuid.uuid4().hex
    admin, member = f"admin:{project}", f"carol:{project}"
    resp = call(world.srv, "PUT", f"/quotas/{project}", token=admin, project=project,
                body={"quota": {"plans": 1}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["quota"]["plans"] == 1
    first = call(world.srv, "POST", "/plans", token=member, project=project,
                 body=plan_body(project, "first"))
    assert first.status_code == 200, first.text
    before = snapshot(world.srv)
    count_before = len(call(world.srv, "GET", "/plans", token=member,
                            project=project).json()["plans"])
    second = call(world.srv, "POST", "/plans", token=member, project=project,
                  body=plan_body(project, "second"))
    assert_fault(second, 413, "plans", "1")
    assert second.headers.get("Retry-After") == "0", dict(second.headers)
    count_after = len(call(world.srv, "GET", "/plans", token=member,
                           project=project).json()["plans"])
    assert count_before == count_after == 1
    assert_unchanged(before, snapshot(world.srv), "an over-quota plan create")
    detail = call(world.srv, "GET", f"/quotas/{project}/detail", token=member,
                  project=project).json()["quota"]
    assert detail["plans"]["in_use"] == 1 and detail["plans"]["limit"] == 1


def test_checkpoint_quota_exceeded(world: World) -> None:
    project = uuid.uuid4().hex
    admin, member = f"admin:{project}", f"dave:{project}"
    resp = call(world.srv, "PUT", f"/quotas/{project}", token=admin, project=project,
                body={"quota": {"checkpoints": 0}})
    assert resp.status_code == 200, resp.text
    plan = call(world.srv, "POST", "/plans", token=member, project=project,
                body=plan_body(project)).json()["plan"]["id"]
    before = snapshot(world.srv)
    resp = call(world.srv, "POST", CPS, token=member, project=project,
                body={"checkpoint": {"plan_id": plan}})
    assert_fault(resp, 413, "checkpoints", "0")
    assert resp.headers.get("Retry-After") == "0", dict(resp.headers)
    assert_unchanged(before, snapshot(world.srv), "an over-quota checkpoint create")
    listed = call(world.srv, "GET", CPS, token=member, project=project).json()["checkpoints"]
    assert listed == []


def test_unknown_route_is_a_fault(world: World) -> None:
    before = snapshot(world.srv)
    resp = call(world.srv, "GET", "/no-such-collection", token=world.token("member"),
                project=world.a)
    assert_fault(resp, 404)
    assert_unchanged(before, snapshot(world.srv), "an unknown route")
