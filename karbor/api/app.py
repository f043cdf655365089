"""The WSGI application: versions document, OpenAPI document and the authenticated /v1 API."""

from __future__ import annotations

import json
import logging
import uuid

import webob
from flask import Flask, Response, g, request

from karbor.api import auth, faults
from karbor.common import exception

LOG = logging.getLogger(__name__)

JSON = "application/json"


def json_response(payload, status: int = 200) -> Response:
    body = b"" if payload is None else json.dumps(payload).encode()
    resp = Response(body, status=status, mimetype=JSON if payload is not None else None)
    if payload is None:
        resp.headers.pop("Content-Type", None)
    return resp


def _create_v1_app() -> Flask:
    from karbor.api.v1 import router

    app = Flask("karbor.api.v1")
    app.url_map.strict_slashes = False

    @app.before_request
    def _context():
        g.context = request.environ.get(auth.CONTEXT_KEY)
        g.request_id = request.environ.get("karbor.request_id")
        if g.context is None:
            raise exception.NotAuthenticated()
        g.context.request_id = g.request_id
        project = (request.view_args or {}).get("project_id")
        if project is not None and project != g.context.project_id:
            raise exception.Invalid("Malformed request url")

    @app.errorhandler(Exception)
    def _fault(exc):
        code, message, headers = faults.from_exception(exc)
        resp = Response(faults.fault_body(code, message), status=code, mimetype=JSON)
        for key, value in headers.items():
            resp.headers[key] = value
        return resp

    router.register(app)
    return app


class KarborApp:
    """Top-level dispatcher: ``/`` → versions, ``/openapi.json``, ``/v1`` → auth → API,
    anything else → a JSON 404."""

    def __init__(self):
        self.v1 = auth.wrap_auth(_create_v1_app().wsgi_app)

    def __call__(self, environ, start_response):
        request_id = "req-" + str(uuid.uuid4())
        environ["karbor.request_id"] = request_id

        def _start(status, headers, exc_info=None):
            headers = [h for h in headers if h[0].lower() not in
                       ("x-compute-request-id", "x-openstack-request-id")]
            headers.append(("x-compute-request-id", request_id))
            headers.append(("x-openstack-request-id", request_id))
            return start_response(status, headers, exc_info)

        path = environ.get("PATH_INFO", "") or "/"
        try:
            if path == "/v1" or path.startswith("/v1/"):
                return self.v1(environ, _start)
            if path.rstrip("/") in ("/openapi.json", "/v1/openapi.json"):
                from karbor.api import openapi

                resp = webob.Response(json.dumps(openapi.document()).encode(),
                                      content_type=JSON, charset=None)
                return resp(environ, _start)
            if path.strip("/") == "":
                return self._versions(environ, _start)
            # Answering every unknown URL with the versions document (a 300) sent clients
            # chasing links for a typo; only ``/`` is the version discovery endpoint.
            return self._not_found(environ, _start)
        except Exception as exc:  # the last line of defence: never a traceback
            code, message, headers = faults.from_exception(exc)
            resp = webob.Response(faults.fault_body(code, message), status=code,
                                  content_type=JSON, charset=None)
            return resp(environ, _start)

    @staticmethod
    def _not_found(environ, start_response):
        resp = webob.Response(faults.fault_body(404, "The resource could not be found."),
                              status=404, content_type=JSON, charset=None)
        return resp(environ, start_response)

    @classmethod
    def _versions(cls, environ, start_response):
        req = webob.Request(environ)
        if req.method not in ("GET", "HEAD"):
            return cls._not_found(environ, start_response)
        host = req.host_url.rstrip("/")
        doc = {"versions": [{"id": "v1.0", "status": "CURRENT",
                             "links": [{"rel": "self",
                                        "href": f"{host}/data-protect/v1/"}]}]}
        resp = webob.Response(json.dumps(doc).encode(), status=300, content_type=JSON,
                              charset=None)
        return resp(environ, start_response)


def create_app():
    return KarborApp()


