"""Listing helpers: keyset pagination with a marker, sorting, regex and exact filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from karbor.common import exception


def regex_clause(column, pattern: str, dialect: str):
    """Regex filters as in the original (REGEXP / ~), portable enough for SQLite."""
    if dialect == "postgresql":
        return column.op("~")(pattern)
    if dialect in ("mysql", "mariadb"):
        return column.op("REGEXP")(pattern)
    return column.op("REGEXP")(pattern)


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
