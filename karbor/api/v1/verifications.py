"""Verifications: check that a checkpoint's data is intact, without restoring it."""

from __future__ import annotations

from flask import Flask

from karbor.api import common
from karbor.api.app import json_response
from karbor.api.schemas import verifications as schemas
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


def view(v: models.Verification) -> dict:
    return {"id": v.id, "project_id": v.project_id, "provider_id": v.provider_id,
            "checkpoint_id": v.checkpoint_id, "parameters": common.loads(v.parameters, {}),
            "status": v.status, "resources_status": common.loads(v.resources_status, {}),
            "resources_reason": common.loads(v.resources_reason, {}),
            **checkpoints_api.outcome(v)}


def list_verifications(project_id):
    ctx = common.context()
    ctx.can("verification:get_all")
    params = common.list_params(CONF.query_verification_filters, SORT_KEYS)
    with session_scope() as session:
        rows = records.list_records(session, ctx, models.Verification, params,
                                    not_found=exception.VerificationNotFound,
                                    kwarg="verification_id")
        items = [view(v) for v in rows or []]
    return json_response({"verifications": items,
                          **common.links("verifications", items, params, "verifications")})


def create_verification(project_id):
    ctx = common.context()
    data = common.body(schemas.create)["verification"]
    ctx.can("verification:create")
    provider = provider_mod.registry().show_or_invalid(data["provider_id"])
    parameters = data.get("parameters") or {}
    plans_api.validate_parameters(provider, parameters, "verify")
    with session_scope(write=True) as session:
        cp = checkpoints_api.get_checkpoint(session, ctx, data["provider_id"],
                                            data["checkpoint_id"])
        if cp.status in constants.CHECKPOINT_USABLE:  # (else: 409 below)
            protection_api.check_parameters(provider, cp, parameters, ctx, "verify")
        record = protection_api.verify(session, ctx, cp, parameters)
        session.flush()
        result = view(record)
    return json_response({"verification": result})


def show_verification(project_id, verification_id):
    ctx = common.context()
    with session_scope() as session:
        row = records.get_record(session, ctx, models.Verification, verification_id,
                                 what="verification", policy="verification:get",
                                 not_found=exception.VerificationNotFound,
                                 kwarg="verification_id")
        return json_response({"verification": view(row)})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/verifications"
    app.add_url_rule(base, "verifications_list", list_verifications, methods=["GET"])
    app.add_url_rule(base, "verifications_create", create_verification, methods=["POST"])
    app.add_url_rule(base + "/<verification_id>", "verifications_show", show_verification,
                     methods=["GET"])
