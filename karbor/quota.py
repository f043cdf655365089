"""Per-project quotas (plans, checkpoints) with quota classes, enforced in the caller's transaction.

Limits resolve as: project override > quota class > configured default.
Usage is a counter row per project and resource; callers change it in the same
transaction that creates or deletes the object, so a failed request never
leaves usage behind.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from karbor.common import exception
from karbor.common.config import CONF
from karbor.db import models

RESOURCES = ("plans", "checkpoints")
DEFAULT_CLASS = "default"


def defaults(session: Session) -> dict[str, int]:
    values = {"plans": CONF.quota_plans, "checkpoints": CONF.quota_checkpoints}
    values.update(class_limits(session, DEFAULT_CLASS))
    return values


def class_limits(session: Session, class_name: str) -> dict[str, int]:
    rows = session.scalars(select(models.QuotaClass).where(
        models.QuotaClass.class_name == class_name, models.QuotaClass.deleted == False))  # noqa: E712
    return {r.resource: r.hard_limit for r in rows if r.resource in RESOURCES}


def project_overrides(session: Session, project_id: str) -> dict[str, int]:
    rows = session.scalars(select(models.Quota).where(
        models.Quota.project_id == project_id, models.Quota.deleted == False))  # noqa: E712
    return {r.resource: r.hard_limit for r in rows if r.resource in RESOURCES}


def limits(session: Session, project_id: str, quota_class: str | None = None) -> dict[str, int]:
    values = defaults(session)
    if quota_class and quota_class != DEFAULT_CLASS:
        values.update(class_limits(session, quota_class))
    values.update(project_overrides(session, project_id))
    return values


def usage(session: Session, project_id: str) -> dict[str, dict[str, int]]:
    rows = session.scalars(select(models.QuotaUsage).where(
        models.QuotaUsage.project_id == project_id))
    out = {r: {"in_use": 0, "reserved": 0} for r in RESOURCES}
    for row in rows:
        if row.resource in out:
            out[row.resource] = {"in_use": max(row.in_use, 0), "reserved": row.reserved}
    return out


def _usage_row(session: Session, project_id: str, resource: str) -> models.QuotaUsage:
    row = session.scalar(select(models.QuotaUsage).where(
        models.QuotaUsage.project_id == project_id, models.QuotaUsage.resource == resource)
        .with_for_update())
    if row is None:
        try:
            with session.begin_nested():
                row = models.QuotaUsage(project_id=project_id, resource=resource, in_use=0,
                                        reserved=0)
                session.add(row)
        except IntegrityError:
            # Another request created the counter first; use theirs.
            row = session.scalar(select(models.QuotaUsage).where(
                models.QuotaUsage.project_id == project_id,
                models.QuotaUsage.resource == resource).with_for_update())
    return row


def consume(session: Session, project_id: str, resource: str, delta: int = 1,
            quota_class: str | None = None) -> None:
    """Add ``delta`` to usage, refusing (413) when that would pass the limit."""
    row = _usage_row(session, project_id, resource)
    if delta > 0:
        limit = limits(session, project_id, quota_class)[resource]
        if limit >= 0 and row.in_use + delta > limit:
            error = {"plans": exception.PlanLimitExceeded,
                     "checkpoints": exception.CheckpointLimitExceeded}[resource]
            raise error(allowed=limit)
    session.execute(update(models.QuotaUsage).where(models.QuotaUsage.id == row.id)
                    .values(in_use=models.QuotaUsage.in_use + delta))


def release(session: Session, project_id: str, resource: str, delta: int = 1) -> None:
    row = _usage_row(session, project_id, resource)
    session.execute(update(models.QuotaUsage).where(models.QuotaUsage.id == row.id)
                    .values(in_use=models.QuotaUsage.in_use - delta))
