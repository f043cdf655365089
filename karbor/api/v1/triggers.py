"""Triggers: the "when" of scheduled operations (only ``time`` triggers exist).

The time maths lives in ``karbor.services.operationengine.time_trigger``; the
API validates with it and stores the normalised properties, which the
scheduler reads back from the database (there is no RPC fan-out as in the
original).
"""

from __future__ import annotations

import uuid

from flask import Flask
from sqlalchemy import select, update

from karbor.api import common, validation
from karbor.api.app import json_response
from karbor.api.schemas import triggers as schemas
from karbor.common import exception
from karbor.db import models, query
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.services.operationengine import time_trigger

TRIGGER_TYPES = ("time",)
SORT_KEYS = {"id", "name", "type", "created_at", "updated_at"}
# The original let every caller use these (project scoping is enforced anyway).
ALLOWED_FILTERS = ["name", "type", "properties"]
REGEX_FILTERS = ("name", "properties")
EXACT_FILTERS = ("id", "type", "project_id")
IN_USE = "Trigger is being used by one or more operations"


def view(trigger: models.Trigger) -> dict:
    properties = common.loads(trigger.properties, {})
    return {"id": trigger.id, "name": trigger.name, "type": trigger.type,
            "properties": {k: str(v) for k, v in properties.items()}}


def get_trigger(session, context, trigger_id: str, *, lock: bool = False) -> models.Trigger:
    """A trigger the caller may see: another project's is 403, as in the original.

    ``lock`` takes the row lock (PostgreSQL/MySQL) so that deleting a trigger and
    creating an operation on it cannot both succeed; SQLite's write transaction
    already serialises them.
    """
    validation.check_uuid(trigger_id, "trigger")
    stmt = query.active(models.Trigger).where(models.Trigger.id == trigger_id)
    if lock:
        stmt = stmt.with_for_update()
    trigger = session.scalar(stmt)
    if trigger is None:
        raise exception.TriggerNotFound(id=trigger_id)
    context.can("trigger:get", {"project_id": trigger.project_id})
    return trigger


def _check_type(trigger_type: str) -> None:
    if trigger_type not in TRIGGER_TYPES:
        raise exception.InvalidInput(reason=f"Invalid trigger type:{trigger_type}")


def list_triggers(project_id):
    ctx = common.context()
    ctx.can("trigger:list")
    params = common.list_params(ALLOWED_FILTERS, SORT_KEYS)
    with session_scope() as session:
        stmt = query.active(models.Trigger)
        if not (ctx.is_admin and params.all_tenants):
            stmt = stmt.where(models.Trigger.project_id == ctx.project_id)
        stmt = common.filter_clauses(stmt, models.Trigger, params.filters, REGEX_FILTERS,
                              EXACT_FILTERS, session)
        triggers = query.paginate(session, stmt, models.Trigger, sort_keys=params.sort_keys,
                                  sort_dirs=params.sort_dirs, limit=params.limit,
                                  marker=params.marker, offset=params.offset,
                                  not_found=exception.TriggerNotFound, marker_kwarg="id")
        items = [view(t) for t in triggers]
    return json_response({"triggers": items,
                          **common.links("triggers", items, params, "triggers")})


def create_trigger(project_id):
    ctx = common.context()
    data = common.body(schemas.create)["trigger_info"]
    ctx.can("trigger:create")
    _check_type(data["type"])
    properties = time_trigger.normalize(data["properties"])
    with session_scope(write=True) as session:
        trigger = models.Trigger(id=str(uuid.uuid4()), name=data["name"],
                                 project_id=ctx.project_id, type=data["type"],
                                 properties=common.dumps(properties))
        session.add(trigger)
        session.flush()
        result = view(trigger)
    return json_response({"trigger_info": result})


def show_trigger(project_id, trigger_id):
    ctx = common.context()
    with session_scope() as session:
        return json_response({"trigger_info": view(get_trigger(session, ctx, trigger_id))})


def _merged_properties(stored: dict, changes: dict) -> dict:
    """Given properties override stored ones; ``null`` drops one (end_time, window).

    The original replaced the whole set and demanded start_time again; merging
    lets ``trigger-update --properties window=900`` (what the CLI sends) work.
    """
    merged = dict(stored)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _reschedule(session, trigger_id: str) -> None:
    """Make the engine recompute the next run of every operation on a changed trigger.

    The engine only looks at operations whose ``next_run_at`` is due or NULL, so
    without this a trigger moved from weekly to hourly would stay silent until
    the old weekly time.
    """
    operation_ids = select(models.ScheduledOperation.id).where(
        models.ScheduledOperation.trigger_id == trigger_id,
        models.ScheduledOperation.deleted == False)  # noqa: E712
    session.execute(update(models.ScheduledOperationState).where(
        models.ScheduledOperationState.operation_id.in_(operation_ids),
        models.ScheduledOperationState.deleted == False,  # noqa: E712
    ).values(next_run_at=None), execution_options={"synchronize_session": False})


def update_trigger(project_id, trigger_id):
    ctx = common.context()
    data = common.body(schemas.update)["trigger_info"]
    with session_scope(write=True) as session:
        trigger = get_trigger(session, ctx, trigger_id)
        ctx.can("trigger:update", {"project_id": trigger.project_id})
        if "type" in data:
            _check_type(data["type"])
        if "name" in data:
            trigger.name = data["name"]
        if data.get("properties"):
            merged = _merged_properties(common.loads(trigger.properties, {}),
                                        data["properties"])
            properties = common.dumps(time_trigger.normalize(merged))
            if properties != trigger.properties:
                trigger.properties = properties
                _reschedule(session, trigger.id)
        trigger.updated_at = utcnow()
        session.flush()
        result = view(trigger)
    return json_response({"trigger_info": result})


def delete_trigger(project_id, trigger_id):
    ctx = common.context()
    with session_scope(write=True) as session:
        trigger = get_trigger(session, ctx, trigger_id, lock=True)
        ctx.can("trigger:delete", {"project_id": trigger.project_id})
        in_use = session.scalar(select(models.ScheduledOperation.id).where(
            models.ScheduledOperation.deleted == False,  # noqa: E712
            models.ScheduledOperation.trigger_id == trigger.id).limit(1))
        if in_use:
            raise exception.FailedDependency(reason=IN_USE)
        trigger.deleted = True
        trigger.deleted_at = utcnow()
    return json_response(None)


def register(app: Flask) -> None:
    base = "/v1/<project_id>/triggers"
    app.add_url_rule(base, "triggers_list", list_triggers, methods=["GET"])
    app.add_url_rule(base, "triggers_create", create_trigger, methods=["POST"])
    app.add_url_rule(base + "/<trigger_id>", "triggers_show", show_trigger, methods=["GET"])
    app.add_url_rule(base + "/<trigger_id>", "triggers_update", update_trigger,
                     methods=["PUT"])
    app.add_url_rule(base + "/<trigger_id>", "triggers_delete", delete_trigger,
                     methods=["DELETE"])
