"""Checkpoints of a provider: protect, list, show, delete, reset state, copy."""

from __future__ import annotations

import datetime as dt
import json

from flask import Flask
from sqlalchemy import select

from karbor.api import common, validation
from karbor.api.app import json_response
from karbor.api.schemas import checkpoints as schemas
from karbor.api.v1 import plans as plans_api
from karbor.api.v1 import providers as providers_api
from karbor.common import constants, exception
from karbor.common.config import CONF
from karbor.db import models, query
from karbor.db.session import session_scope
from karbor.resource import Resource
from karbor.services.protection import api as protection_api
from karbor.services.protection import graph as graph_mod
from karbor.services.protection import progress as progress_mod

SORT_KEYS = {"created_at", "id", "status"}


def view(cp: models.Checkpoint, *, create: bool = False) -> dict:
    plan = json.loads(cp.protection_plan)
    plan.pop("parameters", None)
    graph = cp.resource_graph
    if create:
        plan.pop("provider_id", None)
        if graph is None:
            graph = declared_graph(plan.get("resources") or [])
    return {
        "id": cp.id,
        "project_id": cp.project_id,
        "status": cp.status,
        "protection_plan": plan,
        "resource_graph": graph,
        "created_at": cp.created_at.strftime("%Y-%m-%d") if cp.created_at else None,
        "extra_info": cp.extra_info,
        **outcome(cp),
    }


def declared_graph(resources: list[dict]) -> str:
    """The plan's own resources in the resource_graph format: what a create answers before
    the worker has expanded their dependencies (the original client's OSC plugin parses
    the field, so it must be a graph string, never null)."""
    return graph_mod.serialize([graph_mod.GraphNode(Resource(
        type=r["type"], id=r["id"], name=r.get("name"), extra_info=r.get("extra_info")))
        for r in resources])


def outcome(record) -> dict:
    """What our records add to the original's body: why it failed, per resource, and the
    live progress or, once ended, the summary (services/protection/progress.py)."""
    out: dict = {}
    reason = getattr(record, "status_reason", None)
    if reason and record.status in (constants.CHECKPOINT_STATUS_ERROR,
                                    constants.CHECKPOINT_STATUS_ERROR_DELETING):
        out["reason"] = reason
    if isinstance(record, models.Checkpoint):
        out["resources_status"] = common.loads(record.resources_status, {})
        out["resources_reason"] = common.loads(record.resources_reason, {})
    doc = progress_mod.load(record.progress)
    if "progress" in doc:
        out["progress"] = doc["progress"]
    if "summary" in doc:
        out["summary"] = doc["summary"]
    return out


def get_checkpoint(session, ctx, provider_id: str, checkpoint_id: str) -> models.Checkpoint:
    validation.check_uuid(provider_id, "provider")
    validation.check_uuid(checkpoint_id, "checkpoint")
    providers_api.get_provider(ctx, provider_id)
    cp = session.scalar(select(models.Checkpoint).where(
        models.Checkpoint.id == checkpoint_id, models.Checkpoint.provider_id == provider_id))
    if cp is None:
        raise exception.CheckpointNotFound(checkpoint_id=checkpoint_id)
    if not ctx.is_admin and cp.project_id != ctx.project_id:
        raise exception.AccessCheckpointNotAllowed(checkpoint_id=checkpoint_id)
    if not ctx.can("provider:checkpoint_get", {"project_id": cp.project_id}, fatal=False):
        raise exception.CheckpointNotFound(checkpoint_id=checkpoint_id)
    return cp


def _date(value, name: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%d")
    except ValueError:
        raise exception.InvalidInput(
            reason=f"{name} must be a date in the form YYYY-MM-DD, got {value!r}.") from None


def list_checkpoints(project_id, provider_id):
    ctx = common.context()
    ctx.can("provider:checkpoint_get_all")
    validation.check_uuid(provider_id, "provider")
    providers_api.get_provider(ctx, provider_id)
    params = common.list_params(CONF.query_checkpoint_filters + ["status"], SORT_KEYS)
    filters = params.filters
    with session_scope() as session:
        stmt = select(models.Checkpoint).where(
            models.Checkpoint.provider_id == provider_id,
            models.Checkpoint.status != constants.CHECKPOINT_STATUS_DELETED)
        if ctx.is_admin and params.all_tenants:
            if filters.get("project_id"):
                stmt = stmt.where(models.Checkpoint.project_id == str(filters["project_id"]))
        else:
            stmt = stmt.where(models.Checkpoint.project_id == ctx.project_id)
        if filters.get("plan_id"):
            stmt = stmt.where(models.Checkpoint.plan_id == str(filters["plan_id"]))
        if filters.get("status"):
            stmt = stmt.where(models.Checkpoint.status == str(filters["status"]))
        if filters.get("start_date") or filters.get("end_date"):
            if filters.get("start_date"):
                stmt = stmt.where(models.Checkpoint.created_at >=
                                  _date(filters["start_date"], "start_date"))
            if filters.get("end_date"):
                end = _date(filters["end_date"], "end_date")
                if end.date() < dt.date.max:
                    stmt = stmt.where(models.Checkpoint.created_at < end + dt.timedelta(days=1))
        marker = params.marker
        items = [view(cp) for cp in query.paginate(
            session, stmt, models.Checkpoint, sort_keys=params.sort_keys,
            sort_dirs=params.sort_dirs, limit=params.limit, marker=marker,
            offset=params.offset, not_found=exception.CheckpointNotFound,
            marker_kwarg="checkpoint_id")]
    return json_response({"checkpoints": items, **common.links(
        "checkpoints", items, params, f"providers/{provider_id}/checkpoints")})


def create_checkpoint(project_id, provider_id):
    ctx = common.context()
    validation.check_uuid(provider_id, "provider")
    data = common.body(schemas.create)["checkpoint"]
    ctx.can("provider:checkpoint_create")
    providers_api.get_provider(ctx, provider_id)
    extra = dict(data.get("extra_info") or data.get("extra-info") or {})
    extra["created_by"] = "manual"
    with session_scope(write=True) as session:
        plan = plans_api.get_plan(session, ctx, data["plan_id"])
        if plan.provider_id != provider_id:
            raise exception.InvalidPlan(
                reason="The parameter provider_id is not the same as the value in the plan.")
        cp = protection_api.protect(session, ctx, plan, extra)
        session.flush()
        result = view(cp, create=True)
    return json_response({"checkpoint": result})


def show_checkpoint(project_id, provider_id, checkpoint_id):
    ctx = common.context()
    with session_scope() as session:
        cp = get_checkpoint(session, ctx, provider_id, checkpoint_id)
        return json_response({"checkpoint": view(cp)})


def delete_checkpoint(project_id, provider_id, checkpoint_id):
    ctx = common.context()
    with session_scope(write=True) as session:
        cp = get_checkpoint(session, ctx, provider_id, checkpoint_id)
        ctx.can("provider:checkpoint_delete", {"project_id": cp.project_id})
        protection_api.delete_checkpoint(session, ctx, cp)
    return json_response({})


def reset_state(project_id, provider_id, checkpoint_id):
    ctx = common.context()
    state = common.body(schemas.update)["os-resetState"]["state"]
    with session_scope(write=True) as session:
        cp = get_checkpoint(session, ctx, provider_id, checkpoint_id)
        ctx.can("provider:checkpoint_update", {"project_id": cp.project_id})
        protection_api.reset_state(session, cp, state)
    return json_response({})


def copy_action(project_id, provider_id):
    ctx = common.context()
    validation.check_uuid(provider_id, "provider")
    data = common.body(schemas.copy)["copy"]
    ctx.can("copy:create")
    provider = providers_api.get_provider(ctx, provider_id)
    items = data if isinstance(data, list) else [data]
    results = []
    with session_scope(write=True) as session:
        for item in items:
            if item.get("provider_id") and item["provider_id"] != provider_id:
                raise exception.InvalidInput(
                    reason="copy/provider_id: the provider id is not the same as in the URL.")
            plan = plans_api.get_plan(session, ctx, item["plan_id"])
            if plan.provider_id != provider_id:
                raise exception.InvalidInput(
                    reason="The provider id is not the same as the value in the plan.")
            parameters = item.get("parameters") or {}
            plans_api.validate_parameters(provider, parameters, "plan")
            pairs = protection_api.copy(session, ctx, plan, parameters,
                                        "copy" if provider.has_copy_bank else "primary")
            results.append({"project_id": plan.project_id, "provider_id": provider_id,
                            "plan_id": plan.id, "checkpoint_id": pairs,
                            "parameters": parameters})
    return json_response({"copy": results if isinstance(data, list) else results[0]})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/providers/<provider_id>/checkpoints"
    app.add_url_rule(base, "checkpoints_list", list_checkpoints, methods=["GET"])
    app.add_url_rule(base, "checkpoints_create", create_checkpoint, methods=["POST"])
    app.add_url_rule(base + "/action", "checkpoints_copy", copy_action, methods=["POST"])
    app.add_url_rule(base + "/<checkpoint_id>", "checkpoints_show", show_checkpoint,
                     methods=["GET"])
    app.add_url_rule(base + "/<checkpoint_id>", "checkpoints_delete", delete_checkpoint,
                     methods=["DELETE"])
    app.add_url_rule(base + "/<checkpoint_id>", "checkpoints_reset", reset_state,
                     methods=["PUT"])
