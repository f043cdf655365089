"""Request edges found by an adversarial run, over real HTTP against ``karbor-server``:

* noauth: ``X-Auth-User`` without a token is no credential (the original's 204 answer);
* ``Expect: 100-continue`` on a request without a body is answered, not left hanging;
* a trigger pattern that fires too rarely to find cheaply is a quick 400 naming ``pattern``.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.functional.conftest import KarborServer, new_project_id

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
SOCKET_TIMEOUT = 10


# --------------------------------------------------------------------------- noauth


def test_x_auth_user_alone_is_not_a_credential(server: KarborServer):
    project = new_project_id()
    plan = server.http("POST", "plans", project=project, json={"plan": {
        "name": "private", "provider_id": NOOP,
        "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"}]}})
    assert plan.status_code == 200, plan.text
    url = f"{server.endpoint(project)}/plans"
    for headers in ({"X-Auth-User": "mallory"},
                    {"X-Auth-User": "mallory", "X-Auth-Key": "x"},
                    {"X-Auth-User": "mallory", "X-Auth-Project-Id": project}):
        resp = server.session.get(url, headers=headers, timeout=30)
        # As with no credentials at all: told which token to use, nothing served.
        assert resp.status_code == 204, (headers, resp.status_code, resp.text)
        assert resp.content == b""
        assert resp.headers["X-Auth-Token"].startswith("mallory:")
        created = server.session.post(url, headers=headers, timeout=30, json={"plan": {
            "name": "planted", "provider_id": NOOP,
            "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"}]}})
        assert created.status_code == 204, created.text
    bare = server.session.get(url, timeout=30)
    assert bare.status_code == 204
    assert bare.headers["X-Auth-Token"] == "admin:admin"
    # the documented token still works, and nothing was planted
    listed = server.http("GET", "plans", project=project)
    assert [p["name"] for p in listed.json()["plans"]] == ["private"]


# --------------------------------------------------------------------------- 100-continue


def _exchange(server: KarborServer, head: str, body: bytes = b"") -> bytes:
    """Send ``head``; send ``body`` only after "100 Continue" (as curl does); return
    everything up to the end of the final response's headers and its body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT)
    try:
        sock.sendall(head.encode())
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no response within {SOCKET_TIMEOUT}s to:\n{head}\n"
                                     f"got {data!r}") from None
            if not chunk:
                return data
            data += chunk
            if data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and body:
                sock.sendall(body)
                body = b""
            final = data.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
            if b"\r\n\r\n" in final:
                headers, _, rest = final.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in headers.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) >= length:
                    return final
    finally:
        sock.close()


def _head(server: KarborServer, method: str, path: str, extra: str = "") -> str:
    return (f"{method} /v1/{server.project}/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Auth-Token: demo:{server.project}\r\nExpect: 100-continue\r\n{extra}\r\n")


@pytest.mark.parametrize(("method", "extra", "status"), [
    ("GET", "", b"200"),
    ("POST", "Content-Length: 0\r\n", b"400"),        # no body: the fault says so
    ("POST", "", b"400"),
    ("DELETE", "Content-Length: 0\r\n", b"404"),
], ids=["get", "post-length-0", "post-no-length", "delete"])
def test_expect_100_continue_without_a_body_is_answered(server: KarborServer, method,
                                                        extra, status):
    path = "plans" if method != "DELETE" else "plans/3f9a0c9e-7f62-4d36-9a4e-2f0d2b1a5c77"
    reply = _exchange(server, _head(server, method, path, extra))
    assert reply.startswith(b"HTTP/1.1 " + status), reply


def test_expect_100_continue_with_a_body_is_answered(server: KarborServer):
    body = json.dumps({"plan": {
        "name": "continued", "provider_id": NOOP,
        "resources": [{"id": server.project, "type": "OS::Keystone::Project",
                       "name": "p"}]}}).encode()
    extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    reply = _exchange(server, _head(server, "POST", "plans", extra), body)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["plan"]["name"] == "continued"


# --------------------------------------------------------------------------- triggers


# Each one kept dateutil busy for seconds (the first for minutes): it walks the year
# day by day, stepping through each day's seconds, before it finds an instant.
RARE = [
    "FREQ=SECONDLY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0;BYMINUTE=0;BYSECOND=1",
    "FREQ=MINUTELY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0;BYMINUTE=1",
]
BOUND = 5.0  # seconds: the one timing assertion, far above the ~0.3 s it now takes


@pytest.mark.parametrize("rule", RARE, ids=["secondly", "minutely"])
def test_a_rarely_firing_trigger_is_a_quick_400_naming_pattern(server: KarborServer, rule):
    pattern = f"BEGIN:VEVENT\nRRULE:{rule}\nEND:VEVENT"
    started = time.monotonic()
    resp = server.http("POST", "triggers", timeout=120, json={"trigger_info": {
        "name": "rare", "type": "time",
        "properties": {"format": "calendar", "pattern": pattern,
                       "start_time": "2025-03-01 00:00:00"}}})
    elapsed = time.monotonic() - started
    assert resp.status_code == 400, resp.text
    message = resp.json()["badRequest"]["message"]
    assert message.startswith(f"Invalid input received: The trigger pattern({pattern}) "
                              "is invalid: no occurrence was found within the search limit"), \
        message
    assert elapsed < BOUND, f"{elapsed:.1f}s"


def test_sparse_but_cheap_triggers_are_still_accepted(server: KarborServer):
    for rule in ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
                 "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29",
                 "FREQ=HOURLY;INTERVAL=5;BYMONTH=2;BYMONTHDAY=29;BYHOUR=1"):
        resp = server.http("POST", "triggers", json={"trigger_info": {
            "name": "leap", "type": "time",
            "properties": {"format": "calendar",
                           "pattern": f"BEGIN:VEVENT\nRRULE:{rule}\nEND:VEVENT",
                           "start_time": "2025-03-01 00:00:00"}}})
        assert resp.status_code == 200, (rule, resp.text)
    resp = server.http("POST", "triggers", json={"trigger_info": {
        "name": "leap-cron", "type": "time",
        "properties": {"format": "crontab", "pattern": "0 0 29 2 *"}}})
    assert resp.status_code == 200, resp.text
