"""SQLAlchemy models: the tables of the original API design plus what the API needs beyond them.

JSON-valued columns are stored as text so that SQLite, PostgreSQL and MySQL
hold the same bytes; the views parse them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class TimestampMixin:
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, onupdate=utcnow)


class SoftDeleteMixin(TimestampMixin):
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Plan(Base, SoftDeleteMixin):
    __tablename__ = "plans"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    provider_id: Mapped[str] = mapped_column(String(36), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    __table_args__ = (Index("ix_plans_project_listing", "project_id", "deleted", "created_at",
                            "id"),)
    resources: Mapped[list[Resource]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="Resource.id",
        primaryjoin="and_(Plan.id == Resource.plan_id, Resource.deleted == False)")  # noqa: E712


class Resource(Base, SoftDeleteMixin):
    __tablename__ = "resources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(36), ForeignKey("plans.id"), nullable=False,
                                         index=True)
    resource_id: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_extra_info: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[Plan] = relationship(back_populates="resources")


class Checkpoint(Base, SoftDeleteMixin):
    """The API's record of a checkpoint; the bank holds the data and its own index."""

    __tablename__ = "checkpoints"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    provider_id: Mapped[str] = mapped_column(String(36), nullable=False)
    plan_id: Mapped[str] = mapped_column(String(36), nullable=False)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)
    protection_plan: Mapped[str] = mapped_column(Text, nullable=False)
    resource_graph: Mapped[str | None] = mapped_column(Text)
    extra_info: Mapped[str | None] = mapped_column(Text)
    copy_of: Mapped[str | None] = mapped_column(String(36))
    # Live progress and, once ended, the summary (JSON, see services/protection/progress).
    progress: Mapped[str | None] = mapped_column(Text)
    resources_status: Mapped[str | None] = mapped_column(Text)
    resources_reason: Mapped[str | None] = mapped_column(Text)
    # Which of the provider's banks holds the data: "primary" or "copy".
    bank: Mapped[str] = mapped_column(String(16), nullable=False, default="primary",
                                      server_default="primary")
    __table_args__ = (
        Index("ix_checkpoints_provider_project", "provider_id", "project_id", "created_at"),
        Index("ix_checkpoints_plan", "plan_id", "created_at"),
    )


class Restore(Base, SoftDeleteMixin):
    __tablename__ = "restores"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    provider_id: Mapped[str] = mapped_column(String(36), nullable=False)
    checkpoint_id: Mapped[str] = mapped_column(String(36), nullable=False)
    restore_target: Mapped[str | None] = mapped_column(String(255))
    restore_auth: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    resources_status: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    resources_reason: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    progress: Mapped[str | None] = mapped_column(Text)


class Verification(Base, SoftDeleteMixin):
    __tablename__ = "verifications"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    provider_id: Mapped[str] = mapped_column(String(36), nullable=False)
    checkpoint_id: Mapped[str] = mapped_column(String(36), nullable=False)
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    resources_status: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    resources_reason: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    progress: Mapped[str | None] = mapped_column(Text)


class OperationLog(Base, SoftDeleteMixin):
    __tablename__ = "operation_logs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    operation_type: Mapped[str] = mapped_column(String(255), nullable=False)
    checkpoint_id: Mapped[str | None] = mapped_column(String(36))
    plan_id: Mapped[str | None] = mapped_column(String(36))
    provider_id: Mapped[str | None] = mapped_column(String(36))
    restore_id: Mapped[str | None] = mapped_column(String(36))
    verification_id: Mapped[str | None] = mapped_column(String(36))
    scheduled_operation_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error_info: Mapped[str | None] = mapped_column(Text)
    extra_info: Mapped[str | None] = mapped_column(Text)


class Operation(Base, TimestampMixin):
    """A durable unit of work for the protection workers (the engine seam).

    The API writes it in the same transaction as the record it acts on, so an
    accepted request is never lost; workers claim it with a lease
    (``claimed_until``) so that work of a dead worker is taken over.
    """

    __tablename__ = "operations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    operation_type: Mapped[str] = mapped_column(String(32), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    provider_id: Mapped[str] = mapped_column(String(36), nullable=False)
    checkpoint_id: Mapped[str | None] = mapped_column(String(36))
    restore_id: Mapped[str | None] = mapped_column(String(36))
    verification_id: Mapped[str | None] = mapped_column(String(36))
    operation_log_id: Mapped[str | None] = mapped_column(String(36))
    source_checkpoint_id: Mapped[str | None] = mapped_column(String(36))
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    context: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Trigger(Base, SoftDeleteMixin):
    __tablename__ = "triggers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    properties: Mapped[str] = mapped_column(Text, nullable=False)


class ScheduledOperation(Base, SoftDeleteMixin):
    __tablename__ = "scheduled_operations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    operation_type: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    trigger_id: Mapped[str] = mapped_column(String(36), ForeignKey("triggers.id"),
                                            nullable=False, index=True)
    operation_definition: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class ScheduledOperationState(Base, SoftDeleteMixin):
    __tablename__ = "scheduled_operation_states"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(String(36), ForeignKey("scheduled_operations.id"),
                                              nullable=False, unique=True)
    service_id: Mapped[int | None] = mapped_column(Integer)
    trust_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    end_time_for_run: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The next occurrence to act on; NULL means "compute it" (new or changed trigger).
    next_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    # The last occurrence acted on (run or recorded as skipped).
    last_occurrence: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ScheduledOperationLog(Base, SoftDeleteMixin):
    """One occurrence of a scheduled operation; the unique key makes firing exactly-once."""

    __tablename__ = "scheduled_operation_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(String(36), ForeignKey("scheduled_operations.id"),
                                              nullable=False, index=True)
    expect_start_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    triggered_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    actual_start_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    state: Mapped[str] = mapped_column(String(100), nullable=False)
    extend_info: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("operation_id", "expect_start_time",
                                       name="uniq_scheduled_operation_occurrence"),)


class Service(Base, SoftDeleteMixin):
    __tablename__ = "services"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    binary: Mapped[str] = mapped_column(String(255), nullable=False)
    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    report_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    modified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    rpc_current_version: Mapped[str | None] = mapped_column(String(36))
    rpc_available_version: Mapped[str | None] = mapped_column(String(36))


class Quota(Base, SoftDeleteMixin):
    __tablename__ = "quotas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaClass(Base, SoftDeleteMixin):
    __tablename__ = "quota_classes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    class_name: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaUsage(Base, SoftDeleteMixin):
    __tablename__ = "quota_usages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    in_use: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reserved: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    __table_args__ = (UniqueConstraint("project_id", "resource", name="uniq_quota_usage"),)
