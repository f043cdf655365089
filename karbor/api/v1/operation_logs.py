"""Operation logs: the history of every protect, restore, verify, copy and delete."""

from __future__ import annotations

from flask import Flask

from karbor.api import common
from karbor.api.app import json_response
from karbor.api.v1 import records
from karbor.common import exception
from karbor.common.config import CONF
from karbor.db import models
from karbor.db.session import session_scope

SORT_KEYS = {"id", "status", "created_at", "started_at", "ended_at", "operation_type"}


def view(log: models.OperationLog) -> dict:
    return {"id": log.id, "project_id": log.project_id, "operation_type": log.operation_type,
            "checkpoint_id": log.checkpoint_id, "plan_id": log.plan_id,
            "provider_id": log.provider_id, "restore_id": log.restore_id,
            "verification_id": log.verification_id,
            "scheduled_operation_id": log.scheduled_operation_id, "status": log.status,
            "started_at": common.isotime(log.started_at),
            "ended_at": common.isotime(log.ended_at), "error_info": log.error_info,
            "extra_info": common.loads(log.extra_info, log.extra_info)}


def list_logs(project_id):
    ctx = common.context()
    ctx.can("operation_log:list")
    params = common.list_params(CONF.query_operation_log_filters, SORT_KEYS)
    with session_scope() as session:
        rows = records.list_records(session, ctx, models.OperationLog, params,
                                    not_found=exception.OperationLogNotFound,
                                    kwarg="operation_log_id")
        items = [view(r) for r in rows or []]
    return json_response({"operation_logs": items,
                          **common.links("operation_logs", items, params, "operation_logs")})


def show_log(project_id, operation_log_id):
    ctx = common.context()
    with session_scope() as session:
        row = records.get_record(session, ctx, models.OperationLog, operation_log_id,
                                 what="operation log", policy="operation_log:get",
                                 not_found=exception.OperationLogNotFound,
                                 kwarg="operation_log_id")
        return json_response({"operation_log": view(row)})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/operation_logs"
    app.add_url_rule(base, "operation_logs_list", list_logs, methods=["GET"])
    app.add_url_rule(base + "/<operation_log_id>", "operation_logs_show", show_log,
                     methods=["GET"])
