"""os-services: the Karbor processes and whether they are alive (admin only)."""

from __future__ import annotations

import datetime as dt

from flask import Flask, request
from sqlalchemy import select

from karbor.api import common
from karbor.api.app import json_response
from karbor.common import exception
from karbor.common.config import CONF
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope

UPDATABLE_BINARY = "karbor-operationengine"


def is_up(service: models.Service) -> bool:
    last = service.updated_at or service.created_at
    return last is not None and (utcnow() - last) <= dt.timedelta(seconds=CONF.service_down_time)


def view(s: models.Service) -> dict:
    return {"id": s.id, "binary": s.binary, "host": s.host,
            "status": "disabled" if s.disabled else "enabled",
            "state": "up" if is_up(s) else "down",
            "updated_at": common.isotime(s.updated_at), "disabled_reason": s.disabled_reason}


def list_services(project_id):
    ctx = common.context()
    ctx.can("service:get_all")
    stmt = select(models.Service).where(models.Service.deleted == False)  # noqa: E712
    if request.args.get("host"):
        stmt = stmt.where(models.Service.host == request.args["host"])
    if request.args.get("binary"):
        stmt = stmt.where(models.Service.binary == request.args["binary"])
    with session_scope() as session:
        items = [view(s) for s in session.scalars(stmt.order_by(models.Service.id))]
    return json_response({"services": items})


def update_service(project_id, service_id):
    ctx = common.context()
    ctx.can("service:update")
    data = common.body({
        "type": "object",
        "properties": {"status": {"type": "string", "enum": ["enabled", "disabled"]},
                       "disabled_reason": {"type": ["string", "null"], "maxLength": 255}},
        "required": ["status"],
        "additionalProperties": False,
    })
    try:
        numeric_id = int(service_id)
    except ValueError:
        raise exception.ServiceNotFound(service_id=service_id) from None
    if not 0 < numeric_id <= common.MAX_INT:
        raise exception.ServiceNotFound(service_id=service_id)
    with session_scope(write=True) as session:
        service = session.scalar(select(models.Service).where(
            models.Service.id == numeric_id, models.Service.deleted == False))  # noqa: E712
        if service is None:
            raise exception.ServiceNotFound(service_id=service_id)
        if service.binary != UPDATABLE_BINARY:
            raise exception.InvalidInput(
                reason=f"Updating a {service.binary} service is not supported. Only "
                       f"{UPDATABLE_BINARY} services can be updated.")
        if data["status"] == "enabled":
            if data.get("disabled_reason"):
                raise exception.InvalidInput(
                    reason="disabled_reason: an enabled service cannot have a disabled "
                           "reason.")
            service.disabled = False
            service.disabled_reason = None
        else:
            service.disabled = True
            service.disabled_reason = data.get("disabled_reason")
        service.modified_at = utcnow()
        session.flush()
        result = view(service)
    return json_response({"service": result})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/os-services"
    app.add_url_rule(base, "services_list", list_services, methods=["GET"])
    app.add_url_rule(base + "/<service_id>", "services_update", update_service,
                     methods=["PUT"])
