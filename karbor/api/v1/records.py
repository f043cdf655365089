"""Shared list/show logic for the read-mostly records (restores, verifications, operation logs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from karbor.api import common, validation
from karbor.common import exception
from karbor.db import query


def get_record(session, ctx, model, record_id: str, *, what: str, policy: str,
               not_found: type[exception.NotFound], kwarg: str):
    """A record of the caller's project; another project's record does not exist for it."""
    validation.check_uuid(record_id, what)
    row = session.scalar(select(model).where(model.id == record_id,
                                             model.deleted == False))  # noqa: E712
    if row is None or not ctx.can(policy, {"project_id": row.project_id}, fatal=False):
        raise not_found(**{kwarg: record_id})
    return row


def list_records(session, ctx, model, params: common.ListParams, *,
                 not_found: type[exception.NotFound], kwarg: str) -> list[Any] | None:
    """Rows matching the filters; ``None`` when a filter names no column (empty result)."""
    stmt = query.active(model)
    if not (ctx.is_admin and params.all_tenants):
        stmt = stmt.where(model.project_id == ctx.project_id)
    columns = model.__table__.columns
    for key, value in params.filters.items():
        if key not in columns:
            return None
        stmt = stmt.where(getattr(model, key) == (None if value is None else str(value)))
    return query.paginate(session, stmt, model, sort_keys=params.sort_keys,
                          sort_dirs=params.sort_dirs, limit=params.limit, marker=params.marker,
                          offset=params.offset, not_found=not_found, marker_kwarg=kwarg)
