"""Request helpers shared by the v1 controllers: body, context, listing parameters, links."""

from __future__ import annotations

import ast
import datetime as dt
import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import g, request
from sqlalchemy import Select
from sqlalchemy.orm import Session

from karbor.api import validation
from karbor.common import exception
from karbor.common.config import CONF
from karbor.common.context import RequestContext
from karbor.db import query

MAX_INT = 2**31 - 1  # the largest value every supported database stores in an INTEGER

TRUE_STRINGS = {"true", "yes", "y", "1", "on", "t"}
FALSE_STRINGS = {"false", "no", "n", "0", "off", "f"}


def context() -> RequestContext:
    return g.context


def body(schema: dict[str, Any] | None = None) -> Any:
    """The parsed JSON body, validated against ``schema`` when given."""
    raw = request.get_data(cache=True)
    if not raw or not raw.strip():
        data: Any = None
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exception.MalformedRequestBody(reason=str(exc)) from None
        except RecursionError:
            raise exception.MalformedRequestBody(reason="nested too deeply") from None
        _check_strings(data)
    if schema is not None:
        if data is None:
            raise exception.ValidationError(detail="The request body is missing.")
        validation.validate(schema, data)
    return data


def _check_strings(value: Any, path: str = "body") -> None:
    """Refuse text no database can store: NUL characters and lone UTF-16 surrogates."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise exception.MalformedRequestBody(reason=f"{where} contains a NUL character")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise exception.MalformedRequestBody(
                    reason=f"{where} is not valid Unicode text") from None
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, f"{where}/{key!r}"))
                stack.append((sub, f"{where}/{key}"))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}/{i}") for i, sub in enumerate(item))


def bool_param(name: str, value: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in TRUE_STRINGS:
        return True
    if lowered in FALSE_STRINGS:
        return False
    raise exception.InvalidInput(reason=f"Value {value} for {name} is not a boolean.")


def literal(value: str) -> Any:
    """Filter values are Python literals in the original API (``1``, ``True``, ``None``)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


@dataclass
class ListParams:
    limit: int
    requested_limit: int | None
    marker: str | None
    offset: int
    sort_keys: list[str]
    sort_dirs: list[str]
    filters: dict[str, Any] = field(default_factory=dict)
    all_tenants: bool = False


RESERVED = {"limit", "marker", "offset", "sort", "sort_key", "sort_dir", "all_tenants"}


def list_params(allowed_filters: list[str] | None, sort_keys: set[str],
                default_sort_key: str = "created_at") -> ListParams:
    """Parse limit/marker/offset/sort/all_tenants and the remaining filters.

    A non-admin caller's filters are cut down to ``allowed_filters`` (as the
    original did); an unknown sort key is a 400, not a 500.
    """
    args = request.args
    ctx = context()
    requested_limit = None
    if "limit" in args:
        try:
            requested_limit = int(args["limit"])
        except ValueError:
            raise exception.InvalidInput(reason="limit param must be an integer") from None
        if requested_limit <= 0:
            raise exception.InvalidInput(reason="limit param must be positive")
        requested_limit = min(requested_limit, MAX_INT)
    limit = min(requested_limit or CONF.osapi_max_limit, CONF.osapi_max_limit)
    offset = 0
    if "offset" in args:
        try:
            offset = int(args["offset"])
        except ValueError:
            raise exception.InvalidInput(reason="offset must be an integer.") from None
        if offset < 0:
            raise exception.InvalidInput(reason="offset must be >= 0")
        if offset > MAX_INT:
            raise exception.InvalidInput(reason=f"offset must be <= {MAX_INT}")
    keys: list[str] = []
    dirs: list[str] = []
    if "sort" in args:
        if "sort_key" in args or "sort_dir" in args:
            raise exception.InvalidInput(
                reason="The 'sort_key' and 'sort_dir' parameters are deprecated and cannot "
                       "be used with the 'sort' parameter.")
        for part in args["sort"].split(","):
            part = part.strip()
            if not part:
                continue
            key, _, direction = part.partition(":")
            keys.append(key.strip())
            dirs.append((direction or "desc").strip().lower())
    else:
        if "sort_key" in args:
            keys.append(args["sort_key"])
            dirs.append(args.get("sort_dir", "desc").lower())
        elif "sort_dir" in args:
            keys.append(default_sort_key)
            dirs.append(args["sort_dir"].lower())
    for key, direction in zip(keys, dirs, strict=True):
        if direction not in ("asc", "desc"):
            raise exception.InvalidInput(reason="Unknown sort direction, must be 'desc' or 'asc'.")
        if key not in sort_keys:
            raise exception.InvalidInput(
                reason=f"Invalid sort key {key!r}; allowed: {', '.join(sorted(sort_keys))}.")
    if not keys:
        keys, dirs = [default_sort_key], ["desc"]
    all_tenants = False
    if "all_tenants" in args:
        all_tenants = bool_param("all_tenants", args["all_tenants"]) and ctx.is_admin
    filters = {}
    for key, value in args.items():
        if key in RESERVED:
            continue
        if not ctx.is_admin and allowed_filters is not None and key not in allowed_filters:
            continue
        filters[key] = literal(value)
    return ListParams(limit=limit, requested_limit=requested_limit, marker=args.get("marker"),
                      offset=offset, sort_keys=keys, sort_dirs=dirs, filters=filters,
                      all_tenants=all_tenants)


def base_url() -> str:
    if CONF.osapi_karbor_base_URL:
        return CONF.osapi_karbor_base_URL.rstrip("/")
    return request.host_url.rstrip("/")


def links(collection_key: str, items: list[dict[str, Any]], params: ListParams,
          path: str) -> dict[str, Any]:
    """The ``<collection>_links`` next link, present when the page may continue."""
    if not items or len(items) < params.limit:
        return {}
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "marker"]
    query.append(("marker", items[-1]["id"]))
    project = context().project_id
    prefix = request.script_root.rstrip("/")
    href = f"{base_url()}{prefix}/v1/{project}/{path}?{urllib.parse.urlencode(query)}"
    return {f"{collection_key}_links": [{"rel": "next", "href": href}]}


def isotime(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def loads(text: str | None, default: Any = None) -> Any:
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def filter_clauses(stmt: Select, model, keys: Iterable[str], regex: Iterable[str],
                   exact: Iterable[str], session: Session) -> Select:
    """Apply list filters, unknown keys ignored as in the original.

    Values are taken verbatim from the query string: ``list_params`` runs them
    through ``literal_eval``, which would turn the regex ``1.50`` into ``1.5``
    and ``(2)`` into ``2``.  Regex values must compile with RE2, whose matching
    time is linear in the input: a backtracking engine lets one request such as
    ``name=^(a+)+$`` hold the database (and with SQLite every other request) for
    seconds.  PostgreSQL matches with its own engine, so its statement is also
    given a time limit.
    """
    regex, exact = set(regex), set(exact)
    dialect = session.get_bind().dialect.name
    used = []
    for key in keys:
        value = request.args.get(key, "")
        if key in regex:
            query.compile_regex(value, key)
            stmt = stmt.where(query.regex_clause(getattr(model, key), value, dialect))
            used.append(key)
        elif key in exact:
            stmt = stmt.where(getattr(model, key) == value)
    if used:
        g.regex_filters = used
        query.limit_regex_statement(session)
    return stmt
