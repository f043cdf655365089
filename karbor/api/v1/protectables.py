"""Protectables: resource types Karbor can protect, their instances and dependencies."""

from __future__ import annotations

import ast

from flask import Flask, request

from karbor.api import common
from karbor.api.app import json_response
from karbor.common import exception
from karbor.common.config import CONF
from karbor.services.protection import protectable_registry


def _parameters() -> dict | None:
    raw = request.args.get("parameters")
    if raw is None or raw == "":
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise exception.InvalidInput(reason="The parameters must be a dict.")
    return value


def _instance_view(ctx, resource, registry) -> dict:
    dependents = []
    for dep in registry.fetch_dependent_resources(ctx, resource):
        dependents.append({"type": dep.type, "id": dep.id, "name": dep.name,
                           "extra_info": dep.extra_info})
    return {"id": resource.id, "type": resource.type, "name": resource.name,
            "extra_info": resource.extra_info, "dependent_resources": dependents}


def list_types(project_id):
    ctx = common.context()
    ctx.can("protectable:get_all")
    return json_response(
        {"protectable_type": protectable_registry.registry().list_resource_types()})


def show_type(project_id, protectable_type):
    ctx = common.context()
    ctx.can("protectable:get_all")
    ctx.can("protectable:get")
    dependents = protectable_registry.registry().dependent_types(protectable_type)
    return json_response({"protectable_type": {"name": protectable_type,
                                               "dependent_types": dependents}})


def list_instances(project_id, protectable_type):
    ctx = common.context()
    ctx.can("protectable:get_all")
    ctx.can("protectable:instance_get_all")
    params = common.list_params(CONF.query_instance_filters, {"id", "name", "created_at"},
                                default_sort_key="id")
    registry = protectable_registry.registry()
    resources = registry.list_instances(ctx, protectable_type, parameters=_parameters())
    resources = sorted(resources, key=lambda r: r.id)
    if params.marker:
        ids = [r.id for r in resources]
        if params.marker in ids:
            resources = resources[ids.index(params.marker) + 1:]
    resources = resources[params.offset:params.offset + params.limit]
    items = [_instance_view(ctx, r, registry) for r in resources]
    return json_response({"instances": items, **common.links(
        "instances", items, params, f"protectables/{protectable_type}/instances")})


def show_instance(project_id, protectable_type, resource_id):
    ctx = common.context()
    ctx.can("protectable:get_all")
    ctx.can("protectable:instance_get")
    registry = protectable_registry.registry()
    resource = registry.show_instance(ctx, protectable_type, resource_id,
                                      parameters=_parameters())
    return json_response({"instance": _instance_view(ctx, resource, registry)})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/protectables"
    app.add_url_rule(base, "protectables_list", list_types, methods=["GET"])
    app.add_url_rule(base + "/<protectable_type>", "protectables_show", show_type,
                     methods=["GET"])
    app.add_url_rule(base + "/<protectable_type>/instances", "protectables_instances",
                     list_instances, methods=["GET"])
    app.add_url_rule(base + "/<protectable_type>/instances/<resource_id>",
                     "protectables_instance", show_instance, methods=["GET"])
