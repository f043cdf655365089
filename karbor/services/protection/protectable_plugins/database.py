"""OS::Trove::Instance: Trove database instances, children of the project (as the original).

openstacksdk has no Trove proxy, so Trove's v1.0 REST API is called through a keystoneauth
Adapter (:func:`karbor.common.clients.service_adapter`, service type ``database``, endpoint
from the caller's catalog) by :class:`TroveClient`, which the protection plugin
(``trove_database``) uses too.  Instances that are building, rebooting, resizing or failed
are not protectable (the original's list).  ``parameters`` of ``protectable-list-instances``
filter the listing (``name``, ``status``, ``datastore``, ``datastore_version``, ``flavor``,
``size``, ``region``).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from keystoneauth1 import exceptions as ks_exc

from karbor.common import clients, constants, exception, keystone
from karbor.services.protection.protectable_plugins._openstack import (
    OpenStackProtectablePlugin,
)

SERVICE_TYPE = "database"
MAX_PAGES = 1000


class TroveError(exception.KarborException):
    message = "%(reason)s"


def _detail(exc: ks_exc.HttpError) -> str:
    """Trove's own message out of ``{"badRequest": {"code": 400, "message": "..."}}``."""
    try:
        body = exc.response.json()
        inner = next(iter(body.values())) if isinstance(body, dict) and body else None
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    except Exception:  # noqa: BLE001 - not JSON: keystoneauth's own text
        pass
    return exc.details or exc.message or type(exc).__name__


def trove_error(exc: Exception, doing: str) -> exception.KarborException:
    """A Karbor exception with a status the API can show, worded for Trove (not Keystone)."""
    if isinstance(exc, exception.KarborException):
        return exc
    if isinstance(exc, ks_exc.HttpError):
        status = exc.http_status or 500
        return keystone.http_error(
            status, f"Karbor cannot {doing}: Trove answered {_detail(exc)} (HTTP {status})")
    return clients.translate(exc, doing)


class Record:
    """A Trove JSON object with attribute access (``id``, ``name``, ``status``, ...)."""

    def __init__(self, body: dict[str, Any]):
        self.body = body or {}

    def __getattr__(self, name: str):
        if name == "body":
            raise AttributeError(name)
        return self.body.get(name)


class TroveClient:
    """The few Trove v1.0 calls Karbor makes (instances and backups), as the caller."""

    def __init__(self, context, adapter=None):
        self.adapter = adapter or clients.service_adapter(context, SERVICE_TYPE)

    def _call(self, method: str, path: str, doing: str, *, json: Any = None,
              params: dict | None = None, not_found_ok: bool = False) -> dict:
        try:
            resp = self.adapter.request(path, method, json=json, params=params,
                                        headers={"Accept": "application/json"})
        except ks_exc.NotFound:
            if not_found_ok:
                return {}
            raise
        except Exception as exc:
            raise trove_error(exc, doing) from exc
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            raise TroveError(reason=f"Karbor cannot {doing}: Trove answered something "
                                    f"that is not JSON (HTTP {resp.status_code})") from exc

    # -- instances
    def instances(self) -> list[Record]:
        found: list[Record] = []
        params: dict[str, str] = {}
        for _ in range(MAX_PAGES):
            body = self._call("GET", "/instances", "list Trove instances", params=params)
            found.extend(Record(i) for i in body.get("instances") or [])
            following = [link.get("href") for link in body.get("links") or []
                         if link.get("rel") == "next"]
            marker = None
            if following and following[0]:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(following[0]).query)
                marker = (query.get("marker") or [None])[0]
            if not marker or marker == params.get("marker"):
                break
            params = {"marker": marker}
        return found

    def get_instance(self, instance_id: str) -> Record:
        return Record(self._call("GET", f"/instances/{instance_id}",
                                 f"show Trove instance {instance_id}")["instance"])

    def create_instance(self, body: dict) -> Record:
        return Record(self._call("POST", "/instances", "create a Trove instance",
                                 json={"instance": body})["instance"])

    def delete_instance(self, instance_id: str) -> None:
        self._call("DELETE", f"/instances/{instance_id}",
                   f"delete Trove instance {instance_id}", not_found_ok=True)

    # -- backups
    def create_backup(self, body: dict) -> Record:
        return Record(self._call("POST", "/backups", "create a Trove backup",
                                 json={"backup": body})["backup"])

    def get_backup(self, backup_id: str) -> Record:
        return Record(self._call("GET", f"/backups/{backup_id}",
                                 f"show Trove backup {backup_id}")["backup"])

    def delete_backup(self, backup_id: str) -> None:
        self._call("DELETE", f"/backups/{backup_id}", f"delete Trove backup {backup_id}",
                   not_found_ok=True)


def _flavor_id(instance: Record) -> str | None:
    flavor = instance.flavor
    return flavor.get("id") if isinstance(flavor, dict) else flavor


def extra_info(instance: Record) -> dict:
    datastore = instance.datastore if isinstance(instance.datastore, dict) else {}
    volume = instance.volume if isinstance(instance.volume, dict) else {}
    return {"status": instance.status, "datastore": datastore.get("type"),
            "datastore_version": datastore.get("version"), "flavor": _flavor_id(instance),
            "size": volume.get("size"), "region": instance.region}


class DatabaseProtectablePlugin(OpenStackProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.DATABASE_RESOURCE_TYPE
    _SERVICE = "Trove"
    _INVALID_STATUSES = frozenset({"BUILD", "REBOOT", "RESIZE", "ERROR"})

    def get_parent_resource_types(self):
        return (constants.PROJECT_RESOURCE_TYPE,)

    def _conn(self, context):
        return TroveClient(context)

    def _list(self, conn, context):
        return conn.instances()

    def _get(self, conn, resource_id):
        return conn.get_instance(resource_id)

    def _extra_info(self, obj):
        return extra_info(obj)

    def _dependents(self, context, parent_resource):
        if parent_resource.type != constants.PROJECT_RESOURCE_TYPE:
            return []
        instances = self._listing(context, "list Trove instances",
                                  lambda conn: self._list(conn, context))
        # Trove lists the project of the URL (the caller's); an admin view adds tenant_id.
        return [self._to_resource(i) for i in instances
                if (i.tenant_id or i.project_id or context.project_id) == parent_resource.id
                and self._valid(i)]
