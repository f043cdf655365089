"""A bank in an S3 bucket through boto3: AWS or any S3-compatible server.

Provider file options (names as in the original)::

    [s3_client]
    s3_endpoint = http://127.0.0.1:8080     # empty: AWS
    s3_access_key = ...
    s3_secret_key = ...
    s3_region = us-east-1
    [s3_bank_plugin]
    bank_s3_object_bucket = karbor
    bank_s3_lease_bucket = lease
    lease_expire_window = 600

A copy bank (``group="copy_bank"``) reads all of these from its ``[copy_bank]`` section.
Object keys are the bank keys themselves (leading ``/``), so a bucket written by the
original Karbor lists the same.  S3 lists in ascending key order only: a ``desc`` listing
walks the prefix forward (up to the marker) keeping only the last ``limit`` keys.
Leases are objects named by owner id in the lease bucket, the expiry in their body and
metadata (S3 has no ``X-Delete-After``); expired ones are simply no longer valid.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator

from oslo_config import cfg

from karbor.common import exception
from karbor.services.protection.bank_plugins import _object_store as base

s3_client_opts = [
    cfg.StrOpt("s3_endpoint",
               help="URL of the S3 endpoint, e.g. http://127.0.0.1:8080; empty means AWS."),
    cfg.StrOpt("s3_access_key", help="Access key id."),
    cfg.StrOpt("s3_secret_key", secret=True, help="Secret access key."),
    cfg.StrOpt("s3_region", default="us-east-1",
               help="Region name (used to sign requests and to create buckets)."),
    cfg.StrOpt("s3_addressing_style", default="path", choices=["path", "virtual", "auto"],
               help="Bucket addressing: 'path' (http://host/bucket/key) suits most "
                    "S3-compatible servers."),
    cfg.BoolOpt("s3_verify_ssl", default=True, help="Verify the endpoint's TLS certificate."),
    cfg.StrOpt("s3_ca_cert_file", help="CA bundle to verify the endpoint with."),
    cfg.IntOpt("s3_retry_attempts", default=3, min=1,
               help="Attempts per request (connection errors, throttling, 5xx)."),
    cfg.FloatOpt("s3_connect_timeout", default=10.0, help="Seconds to connect."),
    cfg.FloatOpt("s3_read_timeout", default=60.0, help="Seconds to wait for a response."),
    cfg.IntOpt("s3_max_pool_connections", default=32, min=1,
               help="Connections kept to the endpoint (the engine writes in parallel)."),
]

s3_bank_opts = [
    cfg.StrOpt("bank_s3_object_bucket", default="karbor",
               help="Bucket holding the bank's objects (created if missing)."),
    cfg.StrOpt("bank_s3_lease_bucket", default="lease",
               help="Bucket holding the writers' leases (created if missing)."),
    cfg.IntOpt("lease_expire_window", default=600, min=1,
               help="Seconds a lease stays valid without renewal."),
    cfg.IntOpt("lease_renew_window", default=120, min=1,
               help="Seconds between renewals of a held lease."),
    cfg.IntOpt("lease_validity_window", default=100, min=0,
               help="A lease is valid while at least this many seconds of it remain."),
]

LIST_PAGE = 1000  # the S3 maximum of keys per listing request
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


def list_opts():
    return [("s3_client", s3_client_opts), ("s3_bank_plugin", s3_bank_opts)]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _reason(exc: Exception) -> str:
    return f"S3: {exc.__class__.__name__}: {exc}"


def _session():
    """A boto3 session of its own whose responses keep timestamps as text: the bank never
    reads them, and parsing ``LastModified`` with dateutil costs more than the rest of a
    1,000-key listing page."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return boto3.session.Session(botocore_session=core)


class S3BankPlugin(base.ObjectStoreBankPlugin):
    def __init__(self, config=None, group: str | None = None, *, client=None,
                 object_bucket: str | None = None, lease_bucket: str | None = None,
                 **lease_windows):
        """From a provider's ConfigOpts (``[s3_client]`` + ``[s3_bank_plugin]``, or one
        ``group``), or from an existing boto3 ``client`` (tests, tools)."""
        section = client_section = None
        if config is not None:
            config.register_opts(s3_client_opts, group=group or "s3_client")
            config.register_opts(s3_bank_opts, group=group or "s3_bank_plugin")
            client_section = config[group or "s3_client"]
            section = config[group or "s3_bank_plugin"]
        super().__init__(config, **base.lease_windows(section, lease_windows))
        self.object_bucket = object_bucket or (section.bank_s3_object_bucket
                                               if section is not None else "karbor")
        self.lease_bucket = lease_bucket or (section.bank_s3_lease_bucket
                                             if section is not None else "lease")
        self._region = client_section.s3_region if client_section is not None else None
        self._client = client if client is not None else self._make_client(client_section)
        self._buckets: set[str] = set()
        self._bucket_lock = threading.Lock()
        self._ensure_bucket(self.object_bucket)

    @staticmethod
    def _make_client(opts):
        from botocore.config import Config

        if opts is None:
            raise exception.BankError(reason="S3 bank: no configuration and no client given")
        kwargs = {}
        try:  # botocore >= 1.36 checksums by default; many S3-compatible servers do not.
            Config(request_checksum_calculation="when_required")
            kwargs = {"request_checksum_calculation": "when_required",
                      "response_checksum_validation": "when_required"}
        except TypeError:
            pass
        boto_config = Config(
            s3={"addressing_style": opts.s3_addressing_style},
            signature_version="s3v4",
            retries={"max_attempts": opts.s3_retry_attempts, "mode": "standard"},
            connect_timeout=opts.s3_connect_timeout, read_timeout=opts.s3_read_timeout,
            max_pool_connections=opts.s3_max_pool_connections, **kwargs)
        verify = opts.s3_ca_cert_file or opts.s3_verify_ssl
        try:
            return _session().client(
                "s3", endpoint_url=opts.s3_endpoint or None,
                aws_access_key_id=opts.s3_access_key,
                aws_secret_access_key=opts.s3_secret_key,
                region_name=opts.s3_region or None, verify=verify, config=boto_config)
        except Exception as exc:
            raise exception.BankError(reason=_reason(exc)) from None

    @property
    def client(self):
        return self._client

    def _ensure_bucket(self, bucket: str) -> None:
        if bucket in self._buckets:
            return
        with self._bucket_lock:
            if bucket in self._buckets:
                return
            try:
                self._client.head_bucket(Bucket=bucket)
            except Exception as exc:
                if _error_code(exc) not in _NO_BUCKET_CODES:
                    raise exception.BankError(
                        reason=f"cannot access bucket {bucket}: {_reason(exc)}") from None
                kwargs = {}
                if self._region and self._region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
                try:
                    self._client.create_bucket(Bucket=bucket, **kwargs)
                except Exception as exc2:
                    if _error_code(exc2) != "BucketAlreadyOwnedByYou":
                        raise exception.BankError(
                            reason=f"cannot create bucket {bucket}: {_reason(exc2)}") from None
            self._buckets.add(bucket)

    # -- objects --------------------------------------------------------------------------

    def update_object(self, key, value, context=None):
        body, serialized, content_type = base.encode_value(value)
        try:
            self._client.put_object(Bucket=self.object_bucket, Key=key, Body=body,
                                    ContentType=content_type,
                                    Metadata={base.SERIALIZED: str(serialized)})
        except Exception as exc:
            raise exception.BankError(reason=f"cannot write {key}: {_reason(exc)}") from None

    def get_object(self, key, context=None):
        try:
            resp = self._client.get_object(Bucket=self.object_bucket, Key=key)
            with resp["Body"] as stream:
                body = stream.read()
        except Exception as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise exception.BankObjectNotFound(key=key) from None
            raise exception.BankError(reason=f"cannot read {key}: {_reason(exc)}") from None
        metadata = {k.lower(): v for k, v in (resp.get("Metadata") or {}).items()}
        return base.decode_value(key, body, base.is_serialized(metadata.get(base.SERIALIZED)))

    def delete_object(self, key, context=None):
        try:
            self._client.delete_object(Bucket=self.object_bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in _MISSING_CODES:
                return
            raise exception.BankError(reason=f"cannot delete {key}: {_reason(exc)}") from None

    def _iter_ascending(self, prefix: str, marker: str | None,
                        limit: int | None = None) -> Iterator[str]:
        """Keys under ``prefix`` after ``marker``, ascending, page by page."""
        remaining = limit
        while remaining is None or remaining > 0:
            page_size = LIST_PAGE if remaining is None else min(LIST_PAGE, remaining)
            kwargs = {"Bucket": self.object_bucket, "Prefix": prefix, "MaxKeys": page_size}
            if marker:
                kwargs["Marker"] = marker
            try:
                resp = self._client.list_objects(**kwargs)
            except Exception as exc:
                raise exception.BankError(
                    reason=f"cannot list {prefix}: {_reason(exc)}") from None
            keys = [item["Key"] for item in resp.get("Contents") or ()]
            yield from keys
            if remaining is not None:
                remaining -= len(keys)
            if not keys or not resp.get("IsTruncated"):
                return
            marker = keys[-1]

    def list_objects(self, prefix=None, limit=None, marker=None, sort_dir=None, context=None):
        prefix = prefix or "/"
        limit, reverse = base.list_args(limit, sort_dir)
        if limit == 0:
            return []
        if not reverse:
            return list(self._iter_ascending(prefix, marker, limit))
        # Descending: the last ``limit`` keys before the marker, newest first.
        tail: collections.deque[str] = collections.deque(maxlen=limit)
        for key in self._iter_ascending(prefix, None):
            if marker and key >= marker:
                break
            tail.append(key)
        tail.reverse()
        return list(tail)

    # -- leases ---------------------------------------------------------------------------

    def _write_lease(self, owner_id, expires):
        self._ensure_bucket(self.lease_bucket)
        body = json.dumps({"owner_id": owner_id, "expires": expires}).encode()
        try:
            self._client.put_object(Bucket=self.lease_bucket, Key=owner_id, Body=body,
                                    ContentType=base.JSON_TYPE,
                                    Metadata={base.SERIALIZED: "True",
                                              "expires": repr(expires)})
        except Exception as exc:
            raise exception.BankError(
                reason=f"cannot write the lease of {owner_id}: {_reason(exc)}") from None

    def _read_lease(self, owner_id):
        self._ensure_bucket(self.lease_bucket)
        try:
            resp = self._client.get_object(Bucket=self.lease_bucket, Key=owner_id)
            with resp["Body"] as stream:
                body = stream.read()
        except Exception as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            raise exception.BankError(
                reason=f"cannot read the lease of {owner_id}: {_reason(exc)}") from None
        try:
            return float(json.loads(body)["expires"])
        except (ValueError, KeyError, TypeError):
            return None

    def _remove_lease(self, owner_id):
        try:
            self._client.delete_object(Bucket=self.lease_bucket, Key=owner_id)
        except Exception as exc:
            if _error_code(exc) not in _MISSING_CODES | _NO_BUCKET_CODES:
                raise exception.BankError(
                    reason=f"cannot remove the lease of {owner_id}: {_reason(exc)}") from None
