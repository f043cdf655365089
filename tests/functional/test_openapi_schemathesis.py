"""The served OpenAPI document, and schemathesis run over it against a live server.

``test_openapi_document`` checks the document itself (valid OpenAPI 3.0, every
v1 route documented, served at /openapi.json).  ``test_schemathesis`` then runs,
for every documented operation and against a real ``karbor-server``:

1. ``example``  -- the documented request example with the ids of seeded objects
   (a plan, an available checkpoint, a restore, a verification, a trigger, a
   scheduled operation of the caller's project), so every operation answers a
   real success at least once;
2. ``bound``    -- positive fuzzing with the path parameters bound to those objects;
3. ``random``   -- positive fuzzing with generated path parameters;
4. ``negative`` -- negative fuzzing (data that violates the schema);
5. ``coverage`` -- schemathesis' deterministic coverage cases (boundary values,
   missing required fields, wrong types, unexpected methods), at most
   ``COVERAGE_CASES`` per operation.

The ``project_id`` path parameter is always the caller's project.  Admin-only
operations are called with an admin token.  Checks: ``not_a_server_error``,
``status_code_conformance``, ``response_schema_conformance``,
``response_headers_conformance`` (the request-id header) and
``content_type_conformance``.  Every failure is collected and reported at the end.

Bounded by ``KARBOR_FUZZ_EXAMPLES`` (default 25) examples per operation and pass.
Deletes run last, on objects seeded for them (so the other operations keep
finding theirs).
"""

from __future__ import annotations

import copy
import itertools
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import hypothesis
import openapi_spec_validator
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.functional._server import Server, karbor_server

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
PROJECT_TYPE = "OS::Keystone::Project"
CALENDAR = "BEGIN:VEVENT\nRRULE:FREQ=WEEKLY;INTERVAL=1;\nEND:VEVENT"
MAX_EXAMPLES = int(os.environ.get("KARBOR_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          response_headers_conformance, content_type_conformance]
COVERAGE_CASES = 150
TIMEOUT = 30


@pytest.fixture(scope="module")
def live() -> Iterator[Server]:
    with karbor_server() as srv:
        yield srv


# --------------------------------------------------------------------------- the document


def test_openapi_document(live: Server) -> None:
    from flask import Flask

    from karbor.api import openapi
    from karbor.api.v1 import router

    resp = requests.get(live.url + "/openapi.json", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    doc = resp.json()
    assert doc == openapi.document()
    assert doc["openapi"].startswith("3.0.")
    openapi_spec_validator.validate(doc)

    # Every route of the v1 router is documented, with its path parameters.
    app = Flask("check")
    router.register(app)
    documented = {(method.upper(), path) for path, item in doc["paths"].items()
                  for method in item}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, f"{method} {path} is not documented"
            names = {p["name"] for p in doc["paths"][path][method.lower()]["parameters"]
                     if p["in"] == "path"}
            assert names == set(rule.arguments), (method, path)

    # No Draft-4 leftovers that OpenAPI 3.0 does not have.
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            assert not isinstance(node.get("type"), list), where
            assert "patternProperties" not in node, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(doc["paths"], "#/paths")
    post_plan = doc["paths"]["/v1/{project_id}/plans"]["post"]
    assert set(post_plan["responses"]) >= {"200", "400", "401", "403", "404", "413"}
    checkpoint = doc["paths"]["/v1/{project_id}/providers/{provider_id}/checkpoints/"
                              "{checkpoint_id}"]["get"]["responses"]["200"]
    cp_schema = checkpoint["content"]["application/json"]["schema"]["properties"]["checkpoint"]
    for key in ("resource_graph", "extra_info"):
        assert cp_schema["properties"][key] == {**cp_schema["properties"][key],
                                                "type": "string", "nullable": True}
    assert doc["components"]["securitySchemes"]["token"] == {
        **doc["components"]["securitySchemes"]["token"],
        "type": "apiKey", "in": "header", "name": "X-Auth-Token"}


def test_draft4_conversion() -> None:
    from karbor.api.openapi import convert

    source = {"type": "object", "properties": {
        "name": {"type": ["string", "null"], "maxLength": 5},
        "meta": {"type": ["object", "null"],
                 "patternProperties": {"^[a-z]+$": {"type": ["boolean", "integer", "null"]}},
                 "additionalProperties": False},
        "count": {"type": ["integer", "string"], "minimum": 1, "maxLength": 3}}}
    before = copy.deepcopy(source)
    out = convert(source)
    assert source == before  # the controllers' schemas are untouched
    props = out["properties"]
    assert props["name"] == {"type": "string", "nullable": True, "maxLength": 5}
    assert props["meta"]["type"] == "object" and props["meta"]["nullable"] is True
    assert props["meta"]["additionalProperties"] == {"anyOf": [
        {"type": "boolean", "nullable": True}, {"type": "integer", "nullable": True}]}
    assert "patternProperties" not in props["meta"]
    assert props["count"] == {"anyOf": [{"type": "integer", "minimum": 1},
                                        {"type": "string", "maxLength": 3}]}


# --------------------------------------------------------------------------- fuzzing


def _http(srv: Server, token: str, project: str, method: str, path: str,
          body: Any = None) -> Any:
    resp = requests.request(method, f"{srv.url}/v1/{project}{path}", json=body,
                            headers={"X-Auth-Token": token}, timeout=TIMEOUT)
    assert resp.status_code == 200, f"seeding {method} {path}: {resp.status_code} {resp.text}"
    return resp.json() if resp.content else None


def _seed(srv: Server, project: str) -> dict[str, Any]:
    token = f"fuzzer:{project}"

    def http(method: str, path: str, body: Any = None) -> Any:
        return _http(srv, token, project, method, path, body)

    resources = [{"id": project, "type": PROJECT_TYPE, "name": "project"}]
    plan = http("POST", "/plans", {"plan": {"name": "fuzz", "provider_id": NOOP,
                                            "resources": resources}})["plan"]["id"]
    checkpoint = http("POST", f"/providers/{NOOP}/checkpoints",
                      {"checkpoint": {"plan_id": plan}})["checkpoint"]["id"]
    deadline = time.monotonic() + 30
    while http("GET", f"/providers/{NOOP}/checkpoints/{checkpoint}")["checkpoint"][
            "status"] != "available":
        assert time.monotonic() < deadline, "the seeded checkpoint never became available"
        time.sleep(0.1)
    restore = http("POST", "/restores", {"restore": {
        "provider_id": NOOP, "checkpoint_id": checkpoint}})["restore"]["id"]
    verification = http("POST", "/verifications", {"verification": {
        "provider_id": NOOP, "checkpoint_id": checkpoint}})["verification"]["id"]
    trigger = http("POST", "/triggers", {"trigger_info": {
        "name": "weekly", "type": "time",
        "properties": {"format": "calendar", "pattern": CALENDAR}}})["trigger_info"]["id"]
    scheduled = http("POST", "/scheduled_operations", {"scheduled_operation": {
        "name": "weekly", "operation_type": "protect", "trigger_id": trigger,
        "operation_definition": {"provider_id": NOOP, "plan_id": plan}},
    })["scheduled_operation"]["id"]
    # Targets of the DELETE operations, used by nothing else.
    plan_to_delete = http("POST", "/plans", {"plan": {"name": "doomed", "provider_id": NOOP,
                                                      "resources": resources}})["plan"]["id"]
    trigger_to_delete = http("POST", "/triggers", {"trigger_info": {
        "name": "doomed", "type": "time",
        "properties": {"format": "calendar", "pattern": CALENDAR}}})["trigger_info"]["id"]
    time.sleep(0.5)
    oplog = http("GET", "/operation_logs")["operation_logs"][0]["id"]
    services = _http(srv, f"admin:{project}", project, "GET", "/os-services")["services"]
    engine = next(s["id"] for s in services if s["binary"] == "karbor-operationengine")
    return {
        "project_id": project, "plan_id": plan, "provider_id": NOOP,
        "checkpoint_id": checkpoint, "restore_id": restore, "verification_id": verification,
        "operation_log_id": oplog, "trigger_id": trigger, "operation_id": scheduled,
        "target_project": project, "service_id": engine, "protectable_type": PROJECT_TYPE,
        "resource_id": project, "class_name": "default",
        "delete": {"plan_id": plan_to_delete, "trigger_id": trigger_to_delete},
    }


def _admin_only(operation) -> bool:
    path, method = operation.path, operation.method.upper()
    return ("/os-services" in path or (path.startswith("/v1/{project_id}/quotas/")
                                       and method in ("PUT", "DELETE"))
            or (path.startswith("/v1/{project_id}/quota_classes/") and method == "PUT"))


def _substitute(example: Any, seeded: dict[str, Any]) -> Any:
    """The documented example with ids of the seeded objects."""
    if isinstance(example, dict):
        out = {}
        for key, value in example.items():
            if key in ("plan_id", "checkpoint_id", "trigger_id") and isinstance(value, str):
                out[key] = seeded[key]
            else:
                out[key] = _substitute(value, seeded)
        return out
    if isinstance(example, list):
        return [_substitute(v, seeded) for v in example]
    return example


def _order(operation) -> tuple[int, str]:
    """Deletes last (they remove the seeded objects), dependants before what they use."""
    method = operation.method.upper()
    rank = {"GET": 0, "POST": 1, "PUT": 2, "DELETE": 3}.get(method, 4)
    if method == "DELETE":
        for index, part in enumerate(("checkpoints", "scheduled_operations", "triggers",
                                      "plans")):
            if f"/{part}/" in operation.path:
                rank += index
    return rank, operation.path


class Fuzzer:
    def __init__(self, srv: Server, seeded: dict[str, Any]):
        self.srv = srv
        self.seeded = seeded
        self.session = requests.Session()
        self.calls = 0
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.failures: list[str] = []

    def token(self, operation) -> dict[str, str]:
        user = "admin" if _admin_only(operation) else "fuzzer"
        return {"X-Auth-Token": f"{user}:{self.seeded['project_id']}"}

    def exercise(self, case) -> None:
        response = case.call(base_url=self.srv.url, session=self.session, timeout=TIMEOUT)
        self.calls += 1
        self.statuses[case.operation.label][response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    def bound(self, operation) -> dict[str, Any]:
        names = [p.name for p in operation.path_parameters]
        values = dict(self.seeded)
        if operation.method.upper() == "DELETE":
            values.update(self.seeded["delete"])
        return {name: values[name] for name in names if name in values}

    def coverage(self, schema, operation) -> None:
        config = schema.config.generation_for(operation=operation, phase="coverage")
        cases = schema.iter_coverage_cases(
            operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=config)
        for case in itertools.islice(cases, COVERAGE_CASES):
            if "project_id" in (case.path_parameters or {}):
                case.path_parameters["project_id"] = self.seeded["project_id"]
            case.headers = {**(case.headers or {}), **self.token(operation)}
            try:
                self.exercise(case)
            except Exception as exc:  # collected, reported at the end
                self.failures.append(f"[coverage] {operation.label}:\n{exc}")

    def example(self, operation, doc: dict[str, Any]) -> None:
        raw = doc["paths"][operation.path][operation.method.lower()]
        kwargs: dict[str, Any] = {"path_parameters": self.bound(operation),
                                  "headers": self.token(operation)}
        if "requestBody" in raw:
            media = raw["requestBody"]["content"]["application/json"]
            if "example" not in media:
                return
            kwargs["body"] = _substitute(copy.deepcopy(media["example"]), self.seeded)
            kwargs["media_type"] = "application/json"
        try:
            self.exercise(operation.Case(**kwargs))
        except Exception as exc:  # collected, reported at the end
            self.failures.append(f"[example] {operation.label}:\n{exc}")

    def fuzz(self, operation, mode, path_parameters: dict[str, Any], label: str) -> None:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters,
                                         headers=self.token(operation))

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                  phases=[Phase.explicit, Phase.generate])
        @given(case=strategy)
        def run(case) -> None:
            self.exercise(case)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            pass  # e.g. nothing to make negative in a parameterless GET
        except Exception as exc:  # collected, reported at the end
            self.failures.append(f"[{label}] {operation.label}:\n{exc}")


def test_schemathesis(live: Server) -> None:
    project = uuid.uuid4().hex
    seeded = _seed(live, project)
    doc = requests.get(live.url + "/openapi.json", timeout=TIMEOUT).json()
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    assert len(operations) >= 40, [op.label for op in operations]
    fuzzer = Fuzzer(live, seeded)
    started = time.monotonic()
    for operation in operations:
        fuzzer.example(operation, doc)
        project_only = {"project_id": project} if "{project_id}" in operation.path else {}
        fuzzer.fuzz(operation, GenerationMode.POSITIVE, fuzzer.bound(operation), "bound")
        fuzzer.fuzz(operation, GenerationMode.POSITIVE, project_only, "random")
        fuzzer.fuzz(operation, GenerationMode.NEGATIVE, project_only, "negative")
        fuzzer.coverage(schema, operation)
    elapsed = time.monotonic() - started
    summary = "\n".join(f"  {label}: {dict(sorted(counts.items()))}"
                        for label, counts in sorted(fuzzer.statuses.items()))
    print(f"\nschemathesis: {fuzzer.calls} calls over {len(operations)} operations in "
          f"{elapsed:.1f}s\n{summary}")

    assert fuzzer.calls > 0
    never_called = [op.label for op in operations if not fuzzer.statuses[op.label]]
    assert not never_called, f"operations never called: {never_called}"
    never_succeeded = [op.label for op in operations
                       if not any(200 <= code < 400 for code in fuzzer.statuses[op.label])]
    assert not never_succeeded, f"operations that never answered a success: {never_succeeded}"
    if fuzzer.failures:
        report = "\n\n".join(f[:2500] for f in fuzzer.failures)
        pytest.fail(f"{len(fuzzer.failures)} schemathesis failure(s):\n\n{report}",
                    pytrace=False)
