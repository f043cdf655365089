"""Regex list filters run on RE2, in linear time: a catastrophic-backtracking pattern
neither takes seconds nor blocks other requests; ordinary patterns keep their meaning;
a pattern RE2 refuses, or one that is too long, is a 400 naming the filter."""

from __future__ import annotations

import threading
import time

import pytest

from tests.functional.conftest import KarborServer, new_project_id

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
EVIL = "^(a+)+$"
VICTIM = "a" * 28 + "!"   # with Python's re: about 8 s per row, the server stalled meanwhile
BOUND = 2.0               # seconds; generous (it used to take 8+)
CALENDAR = "BEGIN:VEVENT\nRRULE:FREQ=WEEKLY;INTERVAL=1;\nEND:VEVENT"


def _plan(server: KarborServer, project: str, name: str, description: str = "") -> str:
    resp = server.http("POST", "plans", project=project, json={"plan": {
        "name": name, "description": description, "provider_id": NOOP,
        "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"}]}})
    assert resp.status_code == 200, resp.text
    return resp.json()["plan"]["id"]


def _names(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return sorted(p["name"] for p in resp.json()["plans"])


def test_evil_regex_is_fast_and_does_not_block_the_server(server: KarborServer):
    project = new_project_id()
    _plan(server, project, VICTIM, description=VICTIM)
    results: dict[str, object] = {}

    def evil(field: str) -> None:
        started = time.monotonic()
        resp = server.http("GET", "plans", project=project, params={field: EVIL}, timeout=60)
        results[field] = (resp, time.monotonic() - started)

    threads = [threading.Thread(target=evil, args=(field,)) for field in ("name", "description")]
    for t in threads:
        t.start()
    # While they run (or just after): other requests are answered.
    other = server.http("GET", "plans", project=project, timeout=60)
    assert _names(other) == [VICTIM]
    versions = server.session.get(server.base_url + "/", timeout=60)
    assert versions.status_code == 300
    for t in threads:
        t.join(60)
    for field in ("name", "description"):
        resp, elapsed = results[field]
        assert _names(resp) == [], field      # the '!' defeats the anchor
        assert elapsed < BOUND, f"{field}={EVIL} took {elapsed:.1f}s"


def test_regex_semantics_are_kept(server: KarborServer):
    project = new_project_id()
    for name in ("My plan", "my lowercase", "Not My plan", "other"):
        _plan(server, project, name, description=f"about {name}")
    get = lambda **params: _names(server.http("GET", "plans", project=project,  # noqa: E731
                                              params=params))
    assert get(name="^My") == ["My plan"]
    assert get(name="My") == ["My plan", "Not My plan"]            # a search, not a match
    assert get(name="plan$") == ["My plan", "Not My plan"]
    assert get(name="(?i)^my") == ["My plan", "my lowercase"]
    assert get(name="^(My|other)") == ["My plan", "other"]
    assert get(description="about N") == ["Not My plan"]
    assert get(name="1.50") == []                                  # verbatim, not 1.5


@pytest.mark.parametrize("path", ["plans", "triggers", "scheduled_operations"])
@pytest.mark.parametrize(("pattern", "why"), [
    ("(", "missing )"),
    ("(a)\\1", "invalid escape sequence"),       # backreferences: not in RE2
    ("(?=a)", "invalid perl operator"),          # look-ahead: not in RE2
    ("a" * 257, "longer than 256 characters"),
])
def test_bad_patterns_are_a_400_naming_the_filter(server: KarborServer, path, pattern, why):
    resp = server.http("GET", path, params={"name": pattern})
    assert resp.status_code == 400, resp.text
    message = resp.json()["badRequest"]["message"]
    assert "Invalid regex for name" in message, message
    assert why in message, message


def test_trigger_and_operation_regex_filters(server: KarborServer):
    project = new_project_id()
    resp = server.http("POST", "triggers", project=project, json={"trigger_info": {
        "name": VICTIM, "type": "time", "properties": {"format": "calendar",
                                                       "pattern": CALENDAR}}})
    assert resp.status_code == 200, resp.text
    trigger_id = resp.json()["trigger_info"]["id"]
    plan_id = _plan(server, project, "for op")
    resp = server.http("POST", "scheduled_operations", project=project, json={
        "scheduled_operation": {"name": VICTIM, "operation_type": "protect",
                                "trigger_id": trigger_id,
                                "operation_definition": {"plan_id": plan_id,
                                                         "provider_id": NOOP}}})
    assert resp.status_code == 200, resp.text
    for path, key, fields in (("triggers", "triggers", ("name", "properties")),
                              ("scheduled_operations", "operations",
                               ("name", "operation_definition"))):
        for field in fields:
            started = time.monotonic()
            resp = server.http("GET", path, project=project, params={field: EVIL})
            assert resp.status_code == 200, resp.text
            assert resp.json()[key] == []
            assert time.monotonic() - started < BOUND
        resp = server.http("GET", path, project=project, params={"name": "^a{28}!$"})
        assert [item["name"] for item in resp.json()[key]] == [VICTIM]
    resp = server.http("GET", "triggers", project=project, params={"properties": "WEEKLY"})
    assert [t["id"] for t in resp.json()["triggers"]] == [trigger_id]
