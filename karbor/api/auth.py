"""Turn a request's credentials into a RequestContext (noauth or Keystone).

noauth deliberately differs from the original: the token ``user:project``
makes ``user`` a *member* of ``project``; only the configured admin user also
holds the admin role.  Project isolation therefore holds without Keystone.
"""

from __future__ import annotations

import json
import logging

import webob

from karbor.common.config import CONF
from karbor.common.context import RequestContext

LOG = logging.getLogger(__name__)

CONTEXT_KEY = "karbor.context"


def _roles_for(user: str) -> list[str]:
    return ["admin", "member", "reader"] if user == CONF.noauth_admin_user \
        else ["member", "reader"]


def _remote(req: webob.Request) -> str | None:
    if CONF.use_forwarded_for and req.headers.get("X-Forwarded-For"):
        return req.headers["X-Forwarded-For"].split(",")[0].strip()
    return req.remote_addr


class NoAuthMiddleware:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        token = req.headers.get("X-Auth-Token")
        if token:
            user, _, project = token.partition(":")
            project = project or user
        else:
            # As the original: a request without a token -- X-Auth-User and
            # X-Auth-Key included -- is not served but told which token to use.
            # Honouring X-Auth-User alone would let anyone act in any project.
            user = req.headers.get("X-Auth-User", "admin")
            project = req.headers.get("X-Auth-Project-Id", "admin")
            resp = webob.Response(status=204)
            resp.headers["X-Auth-Token"] = f"{user}:{project}"
            resp.headers["X-Server-Management-Url"] = f"{req.url.rstrip('/')}/{project}"
            resp.content_type = None
            return resp(environ, start_response)
        environ[CONTEXT_KEY] = RequestContext(
            user_id=user, user_name=user, project_id=project, project_name=project,
            roles=_roles_for(user), auth_token=token, remote_address=_remote(req))
        return self.app(environ, start_response)


class KeystoneContextMiddleware:
    """Builds the context from the headers keystonemiddleware's auth_token sets."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        user_id = req.headers.get("X_USER_ID") or req.headers.get("X_USER")
        if not user_id:
            from karbor.api import faults

            resp = webob.Response(status=401, content_type="application/json",
                                  body=faults.fault_body(401, "Authentication required"))
            return resp(environ, start_response)
        roles = [r.strip() for r in req.headers.get("X_ROLES", req.headers.get("X_ROLE", ""))
                 .split(",") if r.strip()]
        catalog = []
        if req.headers.get("X_SERVICE_CATALOG"):
            try:
                catalog = json.loads(req.headers["X_SERVICE_CATALOG"])
            except ValueError:
                catalog = []
        environ[CONTEXT_KEY] = RequestContext(
            user_id=user_id, user_name=req.headers.get("X_USER_NAME"),
            project_id=req.headers.get("X_PROJECT_ID") or req.headers.get("X_TENANT_ID")
            or req.headers.get("X_TENANT"),
            project_name=req.headers.get("X_PROJECT_NAME") or req.headers.get("X_TENANT_NAME"),
            roles=roles,
            auth_token=req.headers.get("X_AUTH_TOKEN") or req.headers.get("X_STORAGE_TOKEN"),
            service_catalog=catalog,
            auth_token_info=environ.get("keystone.token_info"),
            is_admin_project=req.headers.get("X_IS_ADMIN_PROJECT", "True").lower() == "true",
            remote_address=_remote(req))
        return self.app(environ, start_response)


def _opt(section, name):
    try:
        return getattr(section, name)
    except Exception:
        return None


def wrap_auth(app):
    """The auth part of the /v1 pipeline, chosen by ``auth_strategy``."""
    if CONF.auth_strategy == "keystone":
        from keystonemiddleware import auth_token

        middleware = auth_token.AuthProtocol(KeystoneContextMiddleware(app),
                                             {"oslo_config_config": CONF})
        section = CONF.keystone_authtoken
        configured = any(_opt(section, name) for name in ("auth_type", "www_authenticate_uri"))
        if not configured:
            raise RuntimeError("auth_strategy = keystone needs [keystone_authtoken] with "
                               "www_authenticate_uri, auth_type, auth_url and the service "
                               "user's credentials")
        return middleware
    return NoAuthMiddleware(app)
