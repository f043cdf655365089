"""A bank in a Swift container through python-swiftclient.

Provider file options (names as in the original)::

    [swift_client]
    swift_auth_url = http://127.0.0.1:8080/auth/v1.0   # or Keystone's /v3
    swift_auth_version = 1                              # 1 (tempauth/swauth), 2 or 3 (Keystone)
    swift_user = test:tester
    swift_key = testing
    swift_tenant_name = demo                            # Keystone project
    [swift_bank_plugin]
    bank_swift_object_container = karbor
    lease_expire_window = 600

A copy bank (``group="copy_bank"``) reads all of these from its ``[copy_bank]`` section.
Object names are the bank keys themselves (leading ``/``), like the original's.  Listings
are paged with ``marker``/``limit``; ``desc`` uses Swift's ``reverse=on`` listing, so
newest-first pages cost what ascending ones do.  Leases are objects named by owner id in
the ``leases`` container with ``X-Delete-At`` (Swift removes a lapsed lease itself) and
the exact expiry time in their metadata.

swiftclient's ``Connection`` is not thread-safe: each thread gets its own, sharing the
auth token.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator

from oslo_config import cfg

from karbor.common import exception
from karbor.services.protection.bank_plugins import _object_store as base

swift_client_opts = [
    cfg.StrOpt("swift_auth_url",
               help="Auth URL: tempauth's http://host:8080/auth/v1.0 or Keystone's /v3."),
    cfg.StrOpt("swift_auth_version", default="1", choices=["1", "1.0", "2", "2.0", "3"],
               help="1 for tempauth/swauth, 2 or 3 for Keystone."),
    cfg.StrOpt("swift_user", help="User (tempauth: 'account:user')."),
    cfg.StrOpt("swift_key", secret=True, help="Key or password."),
    cfg.StrOpt("swift_tenant_name", help="Keystone project (tenant) name."),
    cfg.StrOpt("swift_project_id", help="Keystone project id (instead of the name)."),
    cfg.StrOpt("swift_user_domain_name", default="Default", help="Keystone v3 user domain."),
    cfg.StrOpt("swift_project_domain_name", default="Default",
               help="Keystone v3 project domain."),
    cfg.StrOpt("swift_region_name", help="Region of the object-store endpoint."),
    cfg.StrOpt("swift_endpoint_type", default="publicURL",
               help="Catalog interface of the object-store endpoint."),
    cfg.StrOpt("swift_storage_url",
               help="Use this storage URL instead of the one the auth service returns."),
    cfg.BoolOpt("swift_auth_insecure", default=False, help="Skip TLS verification."),
    cfg.StrOpt("swift_ca_cert_file", help="CA bundle to verify TLS with."),
    cfg.IntOpt("swift_retry_attempts", default=3, min=0,
               help="Retries of a failed request (connection errors, 5xx)."),
    cfg.FloatOpt("swift_retry_backoff", default=1.0,
                 help="Seconds before the first retry (doubles each time)."),
    cfg.FloatOpt("swift_timeout", default=60.0, help="Seconds to wait for a response."),
]

swift_bank_opts = [
    cfg.StrOpt("bank_swift_object_container", default="karbor",
               help="Container holding the bank's objects (created if missing)."),
    cfg.StrOpt("bank_swift_lease_container", default="leases",
               help="Container holding the writers' leases (created if missing)."),
    cfg.IntOpt("lease_expire_window", default=600, min=1,
               help="Seconds a lease stays valid without renewal (its X-Delete-After)."),
    cfg.IntOpt("lease_renew_window", default=120, min=1,
               help="Seconds between renewals of a held lease."),
    cfg.IntOpt("lease_validity_window", default=100, min=0,
               help="A lease is valid while at least this many seconds of it remain."),
]

# Below Swift's container_listing_limit (default 10000) on any sane cluster: a limited
# listing asks for at most this many names per request; an unlimited one lets the server
# choose its page size.
LIST_PAGE = 1000


def list_opts():
    return [("swift_client", swift_client_opts), ("swift_bank_plugin", swift_bank_opts)]


def _status(exc: Exception) -> int | None:
    return getattr(exc, "http_status", None)


def _reason(exc: Exception) -> str:
    return f"Swift: {exc.__class__.__name__}: {exc}"


class SwiftBankPlugin(base.ObjectStoreBankPlugin):
    def __init__(self, config=None, group: str | None = None, *,
                 connection_factory=None, object_container: str | None = None,
                 lease_container: str | None = None, **lease_windows):
        """From a provider's ConfigOpts (``[swift_client]`` + ``[swift_bank_plugin]``, or
        one ``group``), or from a ``connection_factory(preauth)`` returning swiftclient
        Connections (tests, tools)."""
        section = client_section = None
        if config is not None:
            config.register_opts(swift_client_opts, group=group or "swift_client")
            config.register_opts(swift_bank_opts, group=group or "swift_bank_plugin")
            client_section = config[group or "swift_client"]
            section = config[group or "swift_bank_plugin"]
        super().__init__(config, **base.lease_windows(section, lease_windows))
        self.object_container = object_container or (
            section.bank_swift_object_container if section is not None else "karbor")
        self.lease_container = lease_container or (
            section.bank_swift_lease_container if section is not None else "leases")
        if connection_factory is None:
            if client_section is None:
                raise exception.BankError(
                    reason="Swift bank: no configuration and no connection given")
            connection_factory = self._factory_from(client_section)
        self._factory = connection_factory
        self._local = threading.local()
        self._preauth: tuple[str, str] | None = None
        self._containers: set[str] = set()
        self._container_lock = threading.Lock()
        self._ensure_container(self.object_container)

    @staticmethod
    def _factory_from(opts):
        import swiftclient

        if not opts.swift_auth_url:
            raise exception.BankError(reason="Swift bank: swift_auth_url is not set")
        version = opts.swift_auth_version.split(".")[0]
        os_options = {"region_name": opts.swift_region_name,
                      "endpoint_type": opts.swift_endpoint_type,
                      "object_storage_url": opts.swift_storage_url}
        if version != "1":
            os_options.update({"project_name": opts.swift_tenant_name,
                               "tenant_name": opts.swift_tenant_name,
                               "project_id": opts.swift_project_id,
                               "user_domain_name": opts.swift_user_domain_name,
                               "project_domain_name": opts.swift_project_domain_name})
        os_options = {k: v for k, v in os_options.items() if v}

        def factory(preauth: tuple[str, str] | None):
            return swiftclient.Connection(
                authurl=opts.swift_auth_url, user=opts.swift_user, key=opts.swift_key,
                auth_version=version, os_options=dict(os_options),
                tenant_name=opts.swift_tenant_name if version != "1" else None,
                preauthurl=preauth[0] if preauth else None,
                preauthtoken=preauth[1] if preauth else None,
                retries=opts.swift_retry_attempts, starting_backoff=opts.swift_retry_backoff,
                max_backoff=16, cacert=opts.swift_ca_cert_file,
                insecure=opts.swift_auth_insecure, timeout=opts.swift_timeout)

        return factory

    # -- connections ----------------------------------------------------------------------

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._factory(self._preauth)
            self._local.conn = conn
        return conn

    def _call(self, method: str, *args, **kwargs):
        conn = self._conn()
        result = getattr(conn, method)(*args, **kwargs)
        url, token = getattr(conn, "url", None), getattr(conn, "token", None)
        if url and token and self._preauth != (url, token):
            self._preauth = (url, token)  # later threads start with this token
        return result

    def _ensure_container(self, container: str) -> None:
        if container in self._containers:
            return
        with self._container_lock:
            if container in self._containers:
                return
            try:
                self._call("put_container", container)
            except Exception as exc:
                raise exception.BankError(
                    reason=f"cannot create container {container}: {_reason(exc)}") from None
            self._containers.add(container)

    # -- objects --------------------------------------------------------------------------

    def update_object(self, key, value, context=None):
        body, serialized, content_type = base.encode_value(value)
        try:
            self._call("put_object", self.object_container, key, body,
                       content_type=content_type,
                       headers={"X-Object-Meta-Serialized": str(serialized)})
        except Exception as exc:
            raise exception.BankError(reason=f"cannot write {key}: {_reason(exc)}") from None

    def get_object(self, key, context=None):
        try:
            headers, body = self._call("get_object", self.object_container, key)
        except Exception as exc:
            if _status(exc) == 404:
                raise exception.BankObjectNotFound(key=key) from None
            raise exception.BankError(reason=f"cannot read {key}: {_reason(exc)}") from None
        serialized = base.is_serialized(headers.get("x-object-meta-serialized"))
        return base.decode_value(key, body, serialized)

    def delete_object(self, key, context=None):
        try:
            self._call("delete_object", self.object_container, key)
        except Exception as exc:
            if _status(exc) == 404:
                return
            raise exception.BankError(reason=f"cannot delete {key}: {_reason(exc)}") from None

    def _iter_names(self, prefix: str, marker: str | None, limit: int | None,
                    reverse: bool) -> Iterator[str]:
        """Names under ``prefix`` after ``marker`` in listing order, page by page."""
        remaining = limit
        while remaining is None or remaining > 0:
            asked = remaining if remaining is not None and remaining <= LIST_PAGE else None
            try:
                _, page = self._call("get_container", self.object_container, marker=marker,
                                     limit=asked, prefix=prefix,
                                     query_string="reverse=on" if reverse else None)
            except Exception as exc:
                raise exception.BankError(
                    reason=f"cannot list {prefix}: {_reason(exc)}") from None
            names = [item["name"] for item in page if "name" in item]
            if remaining is not None:
                names = names[:remaining]
                remaining -= len(names)
            yield from names
            # A page shorter than what was asked is the last one; with no limit asked,
            # the server's page size is unknown, so read until an empty page.
            if not names or (asked is not None and len(page) < asked):
                return
            marker = names[-1]

    def list_objects(self, prefix=None, limit=None, marker=None, sort_dir=None, context=None):
        prefix = prefix or "/"
        limit, reverse = base.list_args(limit, sort_dir)
        if limit == 0:
            return []
        return list(self._iter_names(prefix, marker, limit, reverse))

    # -- leases ---------------------------------------------------------------------------

    def _write_lease(self, owner_id, expires):
        self._ensure_container(self.lease_container)
        body = json.dumps({"owner_id": owner_id, "expires": expires}).encode()
        try:
            self._call("put_object", self.lease_container, owner_id, body,
                       content_type=base.JSON_TYPE,
                       # X-Delete-After would round the expiry down to a whole second
                       headers={"X-Delete-At": str(math.ceil(expires)),
                                "X-Object-Meta-Serialized": "True",
                                "X-Object-Meta-Expires": repr(expires)})
        except Exception as exc:
            raise exception.BankError(
                reason=f"cannot write the lease of {owner_id}: {_reason(exc)}") from None

    def _read_lease(self, owner_id):
        self._ensure_container(self.lease_container)
        try:
            headers = self._call("head_object", self.lease_container, owner_id)
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise exception.BankError(
                reason=f"cannot read the lease of {owner_id}: {_reason(exc)}") from None
        try:
            return float(headers["x-object-meta-expires"])
        except (KeyError, ValueError):
            try:
                return float(headers["x-delete-at"])
            except (KeyError, ValueError):
                return None

    def _remove_lease(self, owner_id):
        try:
            self._call("delete_object", self.lease_container, owner_id)
        except Exception as exc:
            if _status(exc) != 404:
                raise exception.BankError(
                    reason=f"cannot remove the lease of {owner_id}: {_reason(exc)}") from None
