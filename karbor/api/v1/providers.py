"""Providers: read-only, from the provider files."""

from __future__ import annotations

from flask import Flask

from karbor.api import common, validation
from karbor.api.app import json_response
from karbor.common import exception
from karbor.common.config import CONF
from karbor.services.protection import provider as provider_mod


def get_provider(ctx, provider_id: str):
    validation.check_uuid(provider_id, "provider")
    if not ctx.can("provider:get", fatal=False):
        raise exception.ProviderNotFound(provider_id=provider_id)
    return provider_mod.registry().show(provider_id)


def list_providers(project_id):
    ctx = common.context()
    ctx.can("provider:get_all")
    params = common.list_params(CONF.query_provider_filters, {"id", "name", "created_at"},
                                default_sort_key="id")
    providers = [p.view() for p in provider_mod.registry().list()]
    for key, value in params.filters.items():
        if key in ("id", "name", "description"):
            providers = [p for p in providers if p[key] == str(value)]
    if params.marker:
        ids = [p["id"] for p in providers]
        if params.marker not in ids:
            raise exception.ProviderNotFound(provider_id=params.marker)
        providers = providers[ids.index(params.marker) + 1:]
    providers = providers[params.offset:params.offset + params.limit]
    return json_response({"providers": providers,
                          **common.links("providers", providers, params, "providers")})


def show_provider(project_id, provider_id):
    ctx = common.context()
    return json_response({"provider": get_provider(ctx, provider_id).view()})


def register(app: Flask) -> None:
    base = "/v1/<project_id>/providers"
    app.add_url_rule(base, "providers_list", list_providers, methods=["GET"])
    app.add_url_rule(base + "/<provider_id>", "providers_show", show_provider, methods=["GET"])
