"""Plans: what to protect (resources), with which provider and parameters."""

from __future__ import annotations

import uuid

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from karbor import quota
from karbor.api import common, validation
from karbor.api.app import json_response
from karbor.api.schemas import plans as schemas
from karbor.common import constants, exception
from karbor.common.config import CONF
from karbor.db import models, query
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.services.protection import api as protection_api
from karbor.services.protection import provider as provider_mod

SORT_KEYS = {"id", "name", "status", "created_at", "updated_at", "provider_id", "project_id",
             "description"}
REGEX_FILTERS = ("name", "description")
EXACT_FILTERS = ("id", "status", "provider_id", "project_id")


def view(plan: models.Plan) -> dict:
    return {"id": plan.id, "name": plan.name, "description": plan.description,
            "resources": protection_api.plan_resources(plan), "provider_id": plan.provider_id,
            "status": plan.status,
            "parameters": common.loads(plan.parameters, {})}


def active_plans():
    # Views always show a plan's resources: load them in one extra query, not one per plan.
    return query.active(models.Plan).options(selectinload(models.Plan.resources))


def get_plan(session, context, plan_id: str, *, lock: bool = False) -> models.Plan:
    """A plan visible to the caller (another project's plan does not exist for it).

    ``lock`` takes the row lock, so a delete cannot race a scheduled operation
    being created on the same plan.
    """
    validation.check_uuid(plan_id, "plan")
    stmt = active_plans().where(models.Plan.id == plan_id)
    if lock:
        stmt = stmt.with_for_update(of=models.Plan)
    if not context.is_admin:
        stmt = stmt.where(models.Plan.project_id == context.project_id)
    plan = session.scalar(stmt)
    if plan is None:
        raise exception.PlanNotFound(plan_id=plan_id)
    context.can("plan:get", {"project_id": plan.project_id})
    return plan


def _coerce_strings(values: dict, properties: dict) -> None:
    """The original client's ``--parameters k=v`` sends every value as a string: turn
    ``"true"`` or ``"5"`` into the boolean or number the plugin's schema asks for, so the
    command line works without ``--parameters-json``. Anything else is left to the schema."""
    for name, value in list(values.items()):
        kind = (properties.get(name) or {}).get("type")
        if not isinstance(value, str) or kind not in ("boolean", "integer", "number"):
            continue
        text = value.strip()
        if kind == "boolean":
            lowered = text.lower()
            if lowered in ("true", "yes", "1", "on"):
                values[name] = True
            elif lowered in ("false", "no", "0", "off"):
                values[name] = False
            continue
        try:
            values[name] = int(text) if kind == "integer" else float(text)
        except ValueError:
            pass


def validate_parameters(provider, parameters: dict, schema_kind: str) -> None:
    """Parameter keys are ``Type`` or ``Type#uuid``; property names must be in the plugin's schema.

    Values are checked against the schema too, so a wrong value is refused now
    rather than failing an operation later.
    """
    for key, values in (parameters or {}).items():
        resource_type, _, resource_id = key.partition("#")
        if resource_id and not validation.is_uuid_like(resource_id):
            raise exception.InvalidInput(
                reason=f"The resource_id in parameters key {key!r} must be a uuid.")
        if resource_type not in provider.plugin_classes:
            raise exception.InvalidInput(
                reason=f"The key of {schema_kind} parameters is invalid: provider "
                       f"{provider.id} has no plugin for resource type {resource_type!r}.")
        plugin = provider.plugin_classes[resource_type]
        getter = {"plan": plugin.get_options_schema, "restore": plugin.get_restore_schema,
                  "verify": plugin.get_verify_schema}[schema_kind]
        schema = getter(resource_type) or {}
        properties = schema.get("properties", {})
        unknown = set(values or {}) - set(properties)
        if unknown:
            raise exception.InvalidInput(
                reason=f"The {schema_kind} property {sorted(unknown)[0]!r} of parameters key "
                       f"{key!r} is invalid; allowed: {sorted(properties) or 'none'}.")
        if values and properties:
            _coerce_strings(values, properties)
            sub = {"type": "object", "properties": properties}
            try:
                validation.validate(sub, values)
            except exception.ValidationError as exc:
                raise exception.InvalidInput(reason=f"parameters[{key!r}]: {exc.msg}") from None


def _resources(plan_id: str, items: list[dict]) -> list[models.Resource]:
    seen = set()
    out = []
    for item in items:
        ident = (item["type"], item["id"])
        if ident in seen:
            raise exception.InvalidInput(
                reason=f"Resource {item['type']} {item['id']} is listed twice.")
        seen.add(ident)
        out.append(models.Resource(
            plan_id=plan_id, resource_id=item["id"], resource_type=item["type"],
            resource_name=item["name"],
            resource_extra_info=common.dumps(item["extra_info"]) if "extra_info" in item
            else None))
    return out


def list_plans(project_id):
    ctx = common.context()
    ctx.can("plan:get_all")
    params = common.list_params(CONF.query_plan_filters, SORT_KEYS)
    with session_scope() as session:
        stmt = active_plans()
        if not (ctx.is_admin and params.all_tenants):
            stmt = stmt.where(models.Plan.project_id == ctx.project_id)
        stmt = common.filter_clauses(stmt, models.Plan, params.filters, REGEX_FILTERS,
                                     EXACT_FILTERS, session)
        plans = query.paginate(session, stmt, models.Plan, sort_keys=params.sort_keys,
                               sort_dirs=params.sort_dirs, limit=params.limit,
                               marker=params.marker, offset=params.offset,
                               not_found=exception.PlanNotFound, marker_kwarg="plan_id")
        items = [view(p) for p in plans]
    return json_response({"plans": items, **common.links("plans", items, params, "plans")})


def create_plan(project_id):
    ctx = common.context()
    data = common.body(schemas.create)["plan"]
    ctx.can("plan:create")
    provider = provider_mod.registry().show_or_invalid(data["provider_id"])
    parameters = data.get("parameters") or {}
    validate_parameters(provider, parameters, "plan")
    plan_id = str(uuid.uuid4())
    with session_scope(write=True) as session:
        quota.consume(session, ctx.project_id, "plans", 1, ctx.quota_class)
        plan = models.Plan(id=plan_id, name=data["name"], description=data.get("description"),
                           provider_id=data["provider_id"], project_id=ctx.project_id,
                           status=constants.PLAN_STATUS_SUSPENDED,
                           parameters=common.dumps(parameters))
        plan.resources = _resources(plan_id, data["resources"])
        session.add(plan)
        session.flush()
        result = view(plan)
    return json_response({"plan": result})


def show_plan(project_id, plan_id):
    ctx = common.context()
    with session_scope() as session:
        return json_response({"plan": view(get_plan(session, ctx, plan_id))})


def update_plan(project_id, plan_id):
    ctx = common.context()
    data = common.body(schemas.update)["plan"]
    with session_scope(write=True) as session:
        plan = get_plan(session, ctx, plan_id)
        ctx.can("plan:update", {"project_id": plan.project_id})
        if "resources" in data and plan.status != constants.PLAN_STATUS_SUSPENDED:
            raise exception.Conflict(
                f"The resources of plan {plan_id} can only be changed while it is suspended.")
        if "name" in data:
            plan.name = data["name"]
        if "description" in data:
            plan.description = data["description"]
        if "status" in data:
            plan.status = data["status"]
        if "resources" in data:
            for old in list(plan.resources):
                session.delete(old)
            session.flush()
            plan.resources = _resources(plan.id, data["resources"])
        plan.updated_at = utcnow()
        session.flush()
        result = view(plan)
    return json_response({"plan": result})


def delete_plan(project_id, plan_id):
    ctx = common.context()
    with session_scope(write=True) as session:
        plan = get_plan(session, ctx, plan_id, lock=True)
        ctx.can("plan:delete", {"project_id": plan.project_id})
        in_use = session.scalar(select(models.ScheduledOperation.id).where(
            models.ScheduledOperation.deleted == False,  # noqa: E712
            models.ScheduledOperation.operation_definition.contains(plan.id)))
        if in_use:
            raise exception.Conflict(
                f"Plan {plan_id} is used by scheduled operation {in_use}; delete that first.")
        now = utcnow()
        plan.deleted = True
        plan.deleted_at = now
        for r in plan.resources:
            r.deleted = True
            r.deleted_at = now
        quota.release(session, plan.project_id, "plans", 1)
    return json_response(None)


def register(app: Flask) -> None:
    base = "/v1/<project_id>/plans"
    app.add_url_rule(base, "plans_list", list_plans, methods=["GET"])
    app.add_url_rule(base, "plans_create", create_plan, methods=["POST"])
    app.add_url_rule(base + "/<plan_id>", "plans_show", show_plan, methods=["GET"])
    app.add_url_rule(base + "/<plan_id>", "plans_update", update_plan, methods=["PUT"])
    app.add_url_rule(base + "/<plan_id>", "plans_delete", delete_plan, methods=["DELETE"])
