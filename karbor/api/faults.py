"""Render every error as the original's fault body; never leak a traceback."""

from __future__ import annotations

import json
import logging

from werkzeug.exceptions import HTTPException

from karbor.common import exception

LOG = logging.getLogger(__name__)

FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
    405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
    424: "failedDependency", 501: "notImplemented", 503: "serviceUnavailable",
}

GENERIC_500 = ("The server has either erred or is incapable of performing the requested "
               "operation.")


def fault_body(code: int, message: str) -> bytes:
    name = FAULT_NAMES.get(code, "computeFault")
    return json.dumps({name: {"code": code, "message": message}}).encode()


def _statement_timeout(exc: BaseException) -> BaseException | None:
    """A PostgreSQL statement cancelled by ``statement_timeout`` (SQLSTATE 57014) as the
    user's fault: only regex-filtered listings set one (see ``query.limit_regex_statement``)."""
    if getattr(getattr(exc, "orig", None), "pgcode", None) != "57014":
        return None
    from flask import g, has_app_context

    from karbor.db import query

    filters = (getattr(g, "regex_filters", None) if has_app_context() else None) or ["?"]
    return query.RegexTimeout(filters=", ".join(filters),
                              seconds=query.REGEX_STATEMENT_TIMEOUT_MS / 1000)


def from_exception(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """Map an exception to (status, message, extra headers)."""
    exc = _statement_timeout(exc) or exc
    if isinstance(exc, exception.KarborException):
        code = exc.code if exc.code < 500 or isinstance(exc, exception.ServiceUnavailable) \
            else 500
        message = exc.msg if code < 500 or code == 503 else GENERIC_500
        if code >= 500:
            LOG.exception("request failed: %s", exc)
        return code, message, dict(exc.headers)
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code == 405:
            # The original answered an unsupported verb with "not found".
            return 404, "The resource could not be found.", {}
        return code, exc.description or exc.name, {}
    if type(exc).__module__.startswith("keystoneauth1"):
        LOG.error("identity service error: %s", exc)
        return 503, f"The identity service could not be used: {type(exc).__name__}", {}
    LOG.exception("unexpected error while handling a request")
    return 500, GENERIC_500, {}
