"""What the named fakes share: a threaded WSGI server, Keystone token checks, timed statuses.

These are **fakes**, not OpenStack services: each speaks exactly the REST calls Karbor makes
(URLs, bodies, status codes, microversion headers, error bodies as the real service
writes them) and keeps its objects in memory.  Objects move through statuses over time
the way the real service's do (``creating`` -> ``available`` after ``delay`` seconds), and
tests steer failures with ``faults`` (see each fake).  Every request's ``X-Auth-Token`` is
validated against the real Keystone of the test run (``GET /v3/auth/tokens`` with an admin
token, cached for a minute); the project in the URL must be the token's.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import requests
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

GONE = object()  # a scheduled "status" meaning: the object disappears


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def new_id() -> str:
    return str(uuid.uuid4())


class KeystoneValidator:
    """``validate(token) -> project_id | None`` against a real Keystone."""

    def __init__(self, v3_url: str, admin_token: Callable[[], str], ttl: float = 60) -> None:
        self.v3 = v3_url.rstrip("/")
        self.admin_token = admin_token
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self.http = requests.Session()

    def __call__(self, token: str) -> str | None:
        with self._lock:
            hit = self._cache.get(token)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        resp = self.http.get(self.v3 + "/auth/tokens", timeout=30,
                             headers={"X-Auth-Token": self.admin_token(),
                                      "X-Subject-Token": token})
        project = None
        if resp.status_code == 200:
            project = (resp.json()["token"].get("project") or {}).get("id")
        with self._lock:
            self._cache[token] = (time.monotonic() + self.ttl, project)
        return project


class Timed:
    """An object whose status follows a schedule: [(monotonic time, status | GONE)]."""

    def __init__(self, body: dict, schedule: list[tuple[float, object]] | None = None):
        self.body = body
        self.schedule = list(schedule or [])

    def advance(self, clock: float) -> bool:
        """Apply the due steps; False when the object is gone."""
        while self.schedule and self.schedule[0][0] <= clock:
            _, status = self.schedule.pop(0)
            if status is GONE:
                return False
            self.body["status"] = status
            self.body["updated_at"] = self.body["updated"] = now_iso()
            self.on_status(status)
        return True

    def on_status(self, status) -> None:
        pass


class FakeService:
    """A small real HTTP server (werkzeug, one thread per request) on 127.0.0.1."""

    #: how this service names errors in its JSON bodies (OpenStack's fault names)
    FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
              409: "conflictingRequest", 413: "overLimit", 422: "unprocessableEntity",
              500: "computeFault"}

    def __init__(self, validate_token: Callable[[str], str | None], *,
                 delay: float = 0.3) -> None:
        self.validate_token = validate_token
        self.delay = delay
        self.faults: dict[str, str] = {}
        self.lock = threading.RLock()
        self.calls: list[tuple[str, str]] = []
        self.url_map = Map(self.rules())
        self._server = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- subclass API
    def rules(self) -> list:
        raise NotImplementedError

    # -- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    # -- helpers for handlers
    def error(self, status: int, message: str) -> Response:
        return self.json({self.FAULTS.get(status, "computeFault"):
                          {"code": status, "message": message}}, status)

    def json(self, body, status: int = 200, headers: dict | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers or {},
                        content_type="application/json")

    def body(self, request: Request, key: str) -> dict | Response:
        try:
            data = json.loads(request.get_data() or b"null")
        except ValueError:
            return self.error(400, "Malformed request body")
        if not isinstance(data, dict) or not isinstance(data.get(key), dict):
            return self.error(400, f"Missing required element '{key}' in request body.")
        return data[key]

    def later(self, *statuses, start: float | None = None) -> list[tuple[float, object]]:
        """A schedule: each status ``delay`` seconds after the previous one."""
        clock = time.monotonic() if start is None else start
        out = []
        for status in statuses:
            clock += self.delay
            out.append((clock, status))
        return out

    def authenticate(self, request: Request, project_id: str | None) -> Response | None:
        token = request.headers.get("X-Auth-Token")
        if not token:
            return self.error(401, "Authentication required")
        owner = self.validate_token(token)
        if owner is None:
            return self.error(401, "The request you have made requires authentication.")
        if project_id is not None and owner != project_id:
            return self.error(400, "Malformed request url")
        request.environ["fake.project_id"] = owner
        return None

    # -- WSGI
    def wsgi(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.calls.append((request.method, request.path))
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, values = adapter.match()
            response = endpoint(request, **values)
        except NotFound:
            response = self.error(404, "The resource could not be found.")
        except HTTPException as exc:
            response = self.error(exc.code or 500, exc.description or str(exc))
        return response(environ, start_response)
