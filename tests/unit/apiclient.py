"""A small client for the WSGI app in unit tests: JSON in, (status, body) out."""

from __future__ import annotations

import json
import urllib.parse

from werkzeug.test import Client

from karbor.common import constants

NOOP = constants.NOOP_PROVIDER_ID
PATTERN = "BEGIN:VEVENT\\nRRULE:FREQ=HOURLY;INTERVAL=1;\\nEND:VEVENT"


class Api:
    def __init__(self, app, project: str, user: str = "alice"):
        self.client = Client(app)
        self.project = project
        self.user = user

    def as_user(self, user: str, project: str | None = None) -> Api:
        return Api(self.client.application, project or self.project, user)

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None,
             query: dict | None = None):
        url = f"/v1/{self.project}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"X-Auth-Token": f"{self.user}:{self.project}"}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        resp = self.client.open(url, method=method, headers=headers, data=data)
        text = resp.get_data(as_text=True)
        return resp.status_code, (json.loads(text) if text else None)

    def get(self, path, **query):
        return self.call("GET", path, query=query or None)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path):
        return self.call("DELETE", path)

    # helpers that must succeed
    def trigger(self, name="t", **props):
        properties = {"format": "calendar", "pattern": PATTERN, **props}
        status, body = self.post("triggers", {"trigger_info": {
            "name": name, "type": "time", "properties": properties}})
        assert status == 200, body
        return body["trigger_info"]

    def plan(self, name="plan"):
        status, body = self.post("plans", {"plan": {
            "name": name, "provider_id": NOOP,
            "resources": [{"id": self.project, "type": constants.PROJECT_RESOURCE_TYPE,
                           "name": self.project}]}})
        assert status == 200, body
        return body["plan"]

    def operation(self, trigger_id, plan_id, name="op", operation_type="protect", **extra):
        status, body = self.post("scheduled_operations", {"scheduled_operation": {
            "name": name, "operation_type": operation_type, "trigger_id": trigger_id,
            "operation_definition": {"provider_id": NOOP, "plan_id": plan_id, **extra}}})
        assert status == 200, body
        return body["scheduled_operation"]


