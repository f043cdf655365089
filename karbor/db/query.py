"""Listing helpers: keyset pagination with a marker, sorting, regex and exact filters."""

from __future__ import annotations

import functools
from typing import Any

import re2
from sqlalchemy import Select, and_, or_, select, text
from sqlalchemy.orm import Session

from karbor.common import exception

MAX_REGEX_LENGTH = 256
# PostgreSQL runs ``~`` with its own (backtracking) engine: RE2 accepting a pattern
# says nothing about its cost there, so a filtered listing gets this much time.
REGEX_STATEMENT_TIMEOUT_MS = 5000
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a user's bad pattern is answered, not logged by RE2


class RegexTimeout(exception.Invalid):
    message = ("The regular expression filter(s) %(filters)s took longer than %(seconds)s "
               "seconds to evaluate; use a simpler pattern.")


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str):
    return re2.compile(pattern, _RE2_OPTIONS)


def compile_regex(pattern: str, field: str = "filter"):
    """The RE2 program of a user's filter; ``InvalidInput`` naming ``field`` otherwise.

    RE2 matches in time linear in the text, which is why it is the only engine a
    user-supplied pattern reaches: no look-around and no backreferences.
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        raise exception.InvalidInput(
            reason=f"Invalid regex for {field}: longer than {MAX_REGEX_LENGTH} characters.")
    try:
        return _compiled(pattern)
    except re2.error as exc:
        raise exception.InvalidInput(
            reason=f"Invalid regex for {field}: {_error_text(exc)} (RE2 syntax: no "
                   "look-around or backreferences).") from None


def _error_text(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)


def regex_search(pattern: str | None, value: Any) -> bool:
    """The SQLite ``REGEXP`` function: an RE2 search, False for NULLs and bad patterns."""
    if value is None or pattern is None:
        return False
    try:
        return _compiled(pattern).search(str(value)) is not None
    except re2.error:
        return False


def regex_clause(column, pattern: str, dialect: str):
    """Regex filters as in the original (REGEXP / ~); SQLite's REGEXP runs RE2."""
    if dialect == "postgresql":
        return column.op("~")(pattern)
    return column.op("REGEXP")(pattern)


def limit_regex_statement(session: Session) -> None:
    """Bound the time PostgreSQL's regex engine may spend on this transaction's queries."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {REGEX_STATEMENT_TIMEOUT_MS}"))


def paginate(session: Session, stmt: Select, model, *, sort_keys: list[str],
             sort_dirs: list[str], limit: int, marker: str | None, offset: int = 0,
             not_found: type[exception.NotFound] = exception.NotFound,
             marker_kwarg: str = "id") -> list[Any]:
    """Apply sort, marker (the last id of the previous page), offset and limit.

    ``created_at`` and ``id`` are appended as tie-breakers so every order is total
    and a marker always resumes exactly after the item it names.
    """
    keys = list(sort_keys)
    dirs = list(sort_dirs)
    for tie in ("created_at", "id"):
        if tie not in keys:
            keys.append(tie)
            dirs.append(dirs[0] if dirs else "desc")
    columns = [getattr(model, k) for k in keys]
    if marker is not None:
        # The marker must be an item this very listing can return: another project's
        # or a deleted object's id is unknown here (and reveals nothing).
        marker_row = session.scalar(stmt.where(model.id == marker).limit(1))
        if marker_row is None:
            raise not_found(**{marker_kwarg: marker})
        criteria = []
        for i, (col, direction) in enumerate(zip(columns, dirs, strict=True)):
            eqs = [columns[j] == getattr(marker_row, keys[j]) for j in range(i)]
            value = getattr(marker_row, keys[i])
            if value is None:
                # NULLs sort first in ascending order here; only non-NULLs follow.
                if direction == "asc":
                    criteria.append(and_(*eqs, col.is_not(None)))
                continue
            cmp = col > value if direction == "asc" else or_(col < value, col.is_(None))
            criteria.append(and_(*eqs, cmp))
        stmt = stmt.where(or_(*criteria))
    order = []
    for col, direction in zip(columns, dirs, strict=True):
        order.append(col.asc().nulls_first() if direction == "asc"
                     else col.desc().nulls_last())
    stmt = stmt.order_by(*order)
    if offset:
        stmt = stmt.offset(offset)
    stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def active(model) -> Select:
    return select(model).where(model.deleted == False)  # noqa: E712
