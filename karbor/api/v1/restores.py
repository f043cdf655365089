"""Restores: bring a checkpoint back onto a target."""

from __future__ import annotations

from flask import Flask

from karbor.api import common
from karbor.api.app import json_response
from karbor.api.schemas import restores as schemas
from karbor.api.v1 import checkpoints as checkpoints_api
from karbor.api.v1 import plans as plans_api
from karbor.api.v1 import records
from karbor.common import constants, exception
from karbor.common.config import CONF
from karbor.db import models
from karbor.db.session import session_scope
from karbor.services.protection import api as protection_api
from karbor.services.protection import provider as provider_mod

SORT_KEYS = {"id", "status", "created_at", "updated_at", "checkpoint_id", "provider_id"}


def view(r: models.Restore) -> dict:
    return {"id": r.id, "project_id": r.project_id, "provider_id": r.provider_id,
            "checkpoint_id": r.checkpoint_id, "restore_target": r.restore_target,
            "parameters": common.loads(r.parameters, {}), "status": r.status,
            "resources_status": common.loads(r.resources_status, {}),
            "resources_reason": common.loads(r.resources_reason, {}),
            **checkpoints_api.outcome(r)}


def list_restores(project_id):
    ctx = common.context()
    ctx.can("restore:get_all")
    params = common.list_params(CONF.query_restore_filters, SORT_KEYS)
    with session_scope() as session:
        rows = records.list_records(session, ctx, models.Restore, params,
                                    not_found=exception.RestoreNotFound, kwarg="restore_id")
        items = [view(r) for r in rows or []]
    return json_response({"restores": items,
                          **common.links("restores", items, params, "restores")})


def create_restore(project_id):
    ctx = common.context()
    data = common.body(schemas.create)["restore"]
    ctx.can("restore:create")
    provider = provider_mod.registry().show_or_invalid(data["provider_id"])
    parameters = data.get("parameters") or {}
    plans_api.validate_parameters(provider, parameters, "restore")
    with session_scope(write=True) as session:
        cp = checkpoints_api.get_checkpoint(session, ctx, data["provider_id"],
                                            data["checkpoint_id"])
        if cp.status in constants.CHECKPOINT_USABLE:  # (else: 409 below)
            protection_api.check_parameters(provider, cp, parameters, ctx, "restore")
        record = protection_api.restore(session, ctx, cp, parameters,
                                        data.get("restore_target"), data.get("restore_auth"))
        session.flush()
        result = view(record)
    return json_response({"restore": result})


def show_restore(project_id, restore_id):
    ctx = common.context()
    with session_scope() as session:
        row = records.get_record(session, ctx, models.Restore, restore_id, what="restore",
                                 policy="restore:get", not_found=exception.RestoreNotFound,
                                 kwarg="restore_id")
        return json_response({"restore": view(row)})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/restores"
    app.add_url_rule(base, "restores_list", list_restores, methods=["GET"])
    app.add_url_rule(base, "restores_create", create_restore, methods=["POST"])
    app.add_url_rule(base + "/<restore_id>", "restores_show", show_restore, methods=["GET"])
