"""Protection plugin for OS::Glance::Image, on the bank's chunk store.

Protect waits (bounded) for the image to be ``active``, saves what is needed to re-create it
(formats, sizes, visibility, tags, custom properties, Glance's checksums) as the ``metadata``
object of the resource's bank section and streams the image data into the chunk store of the
checkpoint's bank (manifest ``image/<checkpoint>/<image>``): deduplicated, compressed and, with
a ``[chunk_store] passphrase``, encrypted. The bytes are hashed on the way; data whose md5 (and
``os_hash_value``) is not Glance's is refused.

Restore creates a new image with the saved formats and properties, uploads the data streamed
back from the chunk store, waits (bounded) for ``active`` and checks that Glance computed the
original checksum; a failed restore deletes the image it created.

Provider file options, ``[image_backup_plugin]`` (the original's section): ``poll_interval``,
``poll_timeout`` and ``io_timeout``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from typing import Any

from openstack import exceptions as sdk_exc
from oslo_config import cfg

from karbor.common import clients, constants, exception
from karbor.services.protection import protection_plugin
from karbor.services.protection.chunkstore.errors import ChunkStoreError, ManifestNotFound
from karbor.services.protection.protection_plugins import _chunks, _cloud

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.IMAGE_RESOURCE_TYPE
METADATA_VERSION = 1
READ_SIZE = 1 << 20
GROUP = "image_backup_plugin"

image_backup_opts = _cloud.poll_opts(
    5.0, 1800.0, min_interval=0.05, min_timeout=1.0,
    interval_help="Seconds between two looks at an image's status.",
    timeout_help="Longest wait, in seconds, for an image to become active (before "
                 "protecting it, and after uploading a restored one).") + [
    cfg.FloatOpt("io_timeout", default=600.0, min=1.0,
                 help="Longest silence, in seconds, of Glance during one request (a stalled "
                      "download or upload fails after it), unless the [trustee] session "
                      "sets a timeout."),
]

# Glance statuses while an image is on its way to ``active``, and those it never leaves.
_TRANSIENT = frozenset({"queued", "saving", "importing", "uploading"})
_FAILED = frozenset({"killed", "deleted", "pending_delete", "deactivated"})

# Attributes of a Glance v2 image that are not user properties: Glance sets them, or they
# are restored explicitly below (the base attributes).
_BASE = ("name", "disk_format", "container_format", "min_disk", "min_ram", "visibility",
         "tags", "os_hidden")
_NOT_PROPERTIES = frozenset({
    *_BASE, "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size",
    "virtual_size", "created_at", "updated_at", "owner", "file", "schema", "self",
    "direct_url", "locations", "protected", "stores", "os_glance_failed_import",
    "os_glance_importing_to_stores"})
# Prefixes Glance reserves (it refuses them on create) or that describe the old image.
_RESERVED_PREFIXES = ("os_glance", "owner_specified.")


def _opts(config):
    return _cloud.options(config, GROUP, image_backup_opts)


def _stream_name(checkpoint_id: str, resource_id: str) -> str:
    return f"image/{checkpoint_id}/{resource_id}"


class ImageProtectionError(_cloud.CloudError):
    pass


# ---------------------------------------------------------------------------------- Glance

#: ``fn(...)``, OpenStack errors turned into Karbor's (not-found ones kept).
_call = functools.partial(_cloud.call, not_found=None)


def _checked(resp, doing: str):
    """``resp`` when it is a success; the SDK's proxies do not raise on their own."""
    try:
        sdk_exc.raise_from_response(resp)
    except Exception as exc:
        if clients.is_not_found(exc):
            raise
        raise clients.translate(exc, doing) from exc
    return resp


def _image_json(conn, image_id: str) -> dict:
    """The image as Glance's v2 API shows it (every attribute and property, flat)."""
    resp = _call(f"show image {image_id}", conn.image.get, f"/images/{image_id}")
    return _checked(resp, f"show image {image_id}").json()


def _wait_active(conn, image_id: str, opts, what: str) -> dict:
    """The image once ``active``; fails on a status it never leaves, a vanished image or
    after ``poll_timeout`` seconds."""
    interval, timeout = float(opts.poll_interval), float(opts.poll_timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            image = _image_json(conn, image_id)
        except Exception as exc:
            if clients.is_not_found(exc):
                raise ImageProtectionError(reason=f"{what} {image_id} does not exist "
                                                  "(any more)") from exc
            raise
        status = image.get("status")
        if status == "active":
            return image
        if status in _FAILED or status not in _TRANSIENT:
            raise ImageProtectionError(reason=f"{what} {image_id} is {status!r}, not active")
        if time.monotonic() + interval > deadline:
            raise ImageProtectionError(reason=f"{what} {image_id} is still {status!r} after "
                                              f"{timeout:g} s (poll_timeout)")
        time.sleep(interval)


def _bounded(conn, opts):
    """``conn`` with a read timeout on every request (keystoneauth's default is none)."""
    session = getattr(conn, "session", None)
    if session is not None and getattr(session, "timeout", None) is None:
        session.timeout = float(opts.io_timeout)
    return conn


# ---------------------------------------------------------------------------------- streams

class _HashingReader:
    """A file object over an iterator of byte pieces (the download), hashing what it hands
    out: md5 (Glance's ``checksum``) and, when Glance names one, ``os_hash_algo``."""

    def __init__(self, pieces, hash_algo: str | None, progress=None):
        self._pieces = iter(pieces)
        self._buf = b""
        self._pos = 0
        self._progress = progress
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.multihash = None
        if hash_algo:
            try:
                self.multihash = hashlib.new(hash_algo)
            except ValueError:
                LOG.warning("unknown os_hash_algo %r: only the md5 checksum is compared",
                            hash_algo)

    def _hash(self, data) -> None:
        self.size += len(data)
        if self._progress is not None:
            self._progress.add(bytes=len(data))
        self.md5.update(data)
        if self.multihash is not None:
            self.multihash.update(data)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out = [self._buf[self._pos:]]
            out.extend(self._pieces)
            self._buf, self._pos = b"", 0
            data = b"".join(out)
            self._hash(data)
            return data
        while len(self._buf) - self._pos < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            if piece:
                self._buf = self._buf[self._pos:] + piece
                self._pos = 0
        data = self._buf[self._pos:self._pos + n]
        self._pos += len(data)
        self._hash(data)
        return data


class _StoreReader:
    """A file object with a length over a chunk-store stream, for a Content-Length upload
    (requests reads it ``read(blocksize)`` at a time)."""

    def __init__(self, pieces, size: int, progress=None):
        self._pieces = iter(pieces)
        self._size = size
        self._buf = memoryview(b"")
        self._progress = progress
        self.sent = 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._size
        while not len(self._buf):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._buf = memoryview(piece)
        data = bytes(self._buf[:n])
        self._buf = self._buf[len(data):]
        self.sent += len(data)
        if self._progress is not None:
            self._progress.add(bytes=len(data))
        self.md5.update(data)
        return data


# ---------------------------------------------------------------------------------- metadata

def _saved_image(image: dict) -> dict:
    """What a restore re-creates, from Glance's view of the image."""
    saved = {k: image.get(k) for k in _BASE if k in image}
    saved["properties"] = {
        k: v for k, v in image.items()
        if k not in _NOT_PROPERTIES and not k.startswith(_RESERVED_PREFIXES)
        and isinstance(v, str)}
    for k in ("checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "id",
              "owner"):
        saved[k] = image.get(k)
    return saved


def _metadata(checkpoint, resource) -> dict:
    section = checkpoint.get_resource_bank_section(resource.id)
    try:
        meta = section.get_object("metadata")
    except exception.BankObjectNotFound:
        raise ImageProtectionError(reason=f"no metadata of image {resource.id} in the "
                                          "bank") from None
    if not isinstance(meta, dict) or meta.get("version") != METADATA_VERSION \
            or not isinstance(meta.get("image_metadata"), dict):
        raise ImageProtectionError(reason=f"the metadata of image {resource.id} has an "
                                          "unknown format")
    return meta


def _create_body(saved: dict, name: str) -> dict:
    body: dict[str, Any] = dict(saved.get("properties") or {})
    body.update(name=name, disk_format=saved.get("disk_format"),
                container_format=saved.get("container_format"))
    for key in ("min_disk", "min_ram"):
        if saved.get(key) is not None:
            body[key] = int(saved[key])
    # A restore never publishes: a public image comes back private (publicizing needs
    # Glance's admin rights and is the owner's decision).
    if saved.get("visibility") in ("private", "shared", "community"):
        body["visibility"] = saved["visibility"]
    if saved.get("tags"):
        body["tags"] = list(saved["tags"])
    if saved.get("os_hidden"):
        body["os_hidden"] = True
    return body


# ---------------------------------------------------------------------------------- hooks

class _Operation(protection_plugin.Operation):
    """Given the provider file (the chunk store's options are in it too)."""

    def __init__(self, config):
        self._config = config


class _Protect(_Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_PROTECTING)
        store = None
        name = _stream_name(checkpoint.id, resource.id)
        written = False
        try:
            opts = _opts(self._config)
            conn = _bounded(clients.connection(context), opts)
            image = _wait_active(conn, resource.id, opts, "image")
            store = _chunks.store_for(self._config, checkpoint.bank)
            resp = _call(f"download image {resource.id}", conn.image.download_image,
                         resource.id, stream=True)
            try:
                _checked(resp, f"download image {resource.id}")
                progress = kwargs.get("progress")
                if progress is not None and image.get("size"):
                    progress.report(bytes_total=image["size"])
                reader = _HashingReader(resp.iter_content(chunk_size=READ_SIZE),
                                        image.get("os_hash_algo"), progress)
                written = True
                manifest = store.write_stream(reader, name)
                if progress is not None and manifest.stats is not None:
                    progress.report(new_bytes=manifest.stats.new_bytes,
                                    bytes_added=manifest.stats.stored_bytes)
            finally:
                resp.close()
            problems = []
            if image.get("size") is not None and reader.size != image["size"]:
                problems.append(f"{reader.size} bytes downloaded, Glance says {image['size']}")
            if image.get("checksum") and reader.md5.hexdigest() != image["checksum"]:
                problems.append(f"md5 {reader.md5.hexdigest()} is not Glance's checksum "
                                f"{image['checksum']}")
            if reader.multihash is not None and image.get("os_hash_value") \
                    and reader.multihash.hexdigest() != image["os_hash_value"]:
                problems.append(f"{image['os_hash_algo']} of the data is not Glance's "
                                "os_hash_value")
            if problems:
                raise ImageProtectionError(reason=f"image {resource.id}: the downloaded data "
                                                  f"is not the image's: {'; '.join(problems)}")
            section.update_object("metadata", {
                "version": METADATA_VERSION, "resource_id": resource.id, "stream": name,
                "size": manifest.size, "md5": reader.md5.hexdigest(),
                "backup_name": parameters.get("backup_name"),
                "image_metadata": _saved_image(image)})
        except Exception:
            if written and store is not None:
                _forget(store, name)
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)
        LOG.info("image %s protected into checkpoint %s: %d bytes, %d new in the store",
                 resource.id, checkpoint.id, manifest.size,
                 manifest.stats.new_bytes if manifest.stats else -1)

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """Another resource failed: this checkpoint is an error, its data goes."""
        store = _chunks.store_for(self._config, checkpoint.bank)
        _forget(store, _stream_name(checkpoint.id, resource.id))
        checkpoint.get_resource_bank_section(resource.id).update_object(
            "status", constants.CHECKPOINT_STATUS_ERROR)


def _forget(store, name: str) -> None:
    _cloud.quietly(f"delete the manifest {name}", store.delete_manifest, name)


class _Restore(_Operation):
    def __init__(self, config):
        super().__init__(config)
        self._created: tuple[Any, str] | None = None

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        conn = None
        try:
            meta = _metadata(checkpoint, resource)
            saved = meta["image_metadata"]
            status = checkpoint.get_resource_bank_section(resource.id).get_object("status")
            if status != constants.CHECKPOINT_STATUS_AVAILABLE:
                raise ImageProtectionError(reason=f"image {resource.id} is {status!r} in the "
                                                  "checkpoint, not available")
            store = _chunks.store_for(self._config, checkpoint.bank)
            opts = _opts(self._config)
            conn = _bounded(_cloud.connection(context, kwargs), opts)
            name = parameters.get("restore_name") or saved.get("name") or \
                "karbor-restore-image"
            created = _checked(_call("create an image", conn.image.post, "/images",
                                     json=_create_body(saved, name)),
                               "create an image").json()
            new_id = created["id"]
            self._created = (conn, new_id)
            _cloud.record(kwargs, "restore", resource.type, new_id, "restoring")
            progress = kwargs.get("progress")
            if progress is not None:
                progress.report(bytes_total=int(meta["size"]))
            reader = _StoreReader(store.read_stream(meta["stream"]), int(meta["size"]),
                                  progress)
            _checked(_call(f"upload the data of image {new_id}", conn.image.put,
                           f"/images/{new_id}/file", data=reader,
                           headers={"Content-Type": "application/octet-stream"}),
                     f"upload the data of image {new_id}")
            if reader.sent != int(meta["size"]):
                raise ImageProtectionError(reason=f"{reader.sent} of {meta['size']} bytes "
                                                  "uploaded")
            image = _wait_active(conn, new_id, opts, "restored image")
            want = saved.get("checksum") or meta.get("md5")
            if image.get("checksum") != want or reader.md5.hexdigest() != meta.get("md5"):
                raise ImageProtectionError(
                    reason=f"restored image {new_id} has checksum {image.get('checksum')}, "
                           f"the original {want}")
            if saved.get("os_hash_value") and image.get("os_hash_algo") == \
                    saved.get("os_hash_algo") and image.get("os_hash_value") != \
                    saved["os_hash_value"]:
                raise ImageProtectionError(
                    reason=f"restored image {new_id}: os_hash_value differs from the "
                           "original's")
        except Exception as exc:
            reason = _chunks.message(exc)
            if isinstance(exc, ChunkStoreError):
                reason = f"image data in the bank is unreadable: {reason}"
            new_id = self._created[1] if self._created else None
            self._delete_created()
            if new_id:
                _cloud.record(kwargs, "restore", resource.type, new_id, "deleted",
                              "deleted: the restore failed")
            _cloud.record(kwargs, "restore", resource.type, resource.id, "error", reason)
            raise
        kwargs.get("new_resources", {})[resource.id] = new_id
        _cloud.record(kwargs, "restore", resource.type, new_id, "available")

    def _delete_created(self) -> None:
        if self._created is None:
            return
        conn, image_id = self._created
        self._created = None
        _cloud.quietly(f"delete the half-restored image {image_id}", conn.image.delete_image,
                       image_id, ignore_missing=True)

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """Another resource of the restore failed: the image made here goes too."""
        new_id = self._created[1] if self._created else None
        self._delete_created()
        if new_id:
            kwargs.get("new_resources", {}).pop(resource.id, None)
            _cloud.record(kwargs, "restore", resource.type, new_id, "deleted",
                          "the restore failed elsewhere")


class _Verify(_Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        reason = None
        try:
            meta = _metadata(checkpoint, resource)
            store = _chunks.store_for(self._config, checkpoint.bank)
            report = store.verify(meta["stream"])
            if not report.ok:
                reason = (f"corrupt image data ({len(report.bad)} bad chunk(s)): "
                          f"{report.bad[0]['reason']}")
            elif report.bytes != int(meta["size"]):
                reason = f"the stored image has {report.bytes} bytes, not {meta['size']}"
        except (ChunkStoreError, ImageProtectionError) as exc:
            reason = _chunks.message(exc)
        if reason:
            _cloud.record(kwargs, "verify", resource.type, resource.id, "error", reason)
            raise ImageProtectionError(reason=f"verification failed: {reason}")
        _cloud.record(kwargs, "verify", resource.type, resource.id, "available")


class _Delete(_Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_DELETING)
        store = _chunks.store_for(self._config, checkpoint.bank)
        name = _stream_name(checkpoint.id, resource.id)
        for found in store.list_manifests(name):
            if found == name:
                store.delete_manifest(found)
        section.delete_object("metadata")
        section.update_object("status", constants.CHECKPOINT_STATUS_DELETED)
        _chunks.collect(store, LOG)


class _Copy(_Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        copy_cp = kwargs["checkpoint_copy"]
        source = _chunks.store_for(self._config, checkpoint.bank)
        target = _chunks.store_for(self._config, copy_cp.bank, like=source)
        meta = _metadata(checkpoint, resource)
        new_name = _stream_name(copy_cp.id, resource.id)
        try:
            source.copy_to(target, meta["stream"], new_name)
        except ManifestNotFound as exc:
            raise ImageProtectionError(reason=f"image {resource.id}: {exc}") from exc
        section = copy_cp.get_resource_bank_section(resource.id)
        section.update_object("metadata", {**meta, "stream": new_name})
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)


OPTIONS_SCHEMA = {"type": "object", "title": "Image protection options", "properties": {
    "backup_name": {"type": "string", "title": "Backup name", "maxLength": 255,
                    "description": "A name recorded with the protected image."}}}

RESTORE_SCHEMA = {"type": "object", "title": "Image restore options", "properties": {
    "restore_name": {"type": "string", "title": "Restore name", "maxLength": 255,
                     "description": "The name of the new image (default: the original "
                                    "image's name)."}}}

VERIFY_SCHEMA = {"type": "object", "title": "Image verify options", "properties": {}}

SAVED_INFO_SCHEMA = {"type": "object", "title": "Image saved info", "properties": {
    "image_metadata": {
        "type": "object", "title": "Image metadata",
        "description": "What the restore re-creates and checks.",
        "properties": {
            "name": {"type": ["string", "null"]},
            "disk_format": {"type": ["string", "null"]},
            "container_format": {"type": ["string", "null"]},
            "min_disk": {"type": ["integer", "null"]},
            "min_ram": {"type": ["integer", "null"]},
            "visibility": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "properties": {"type": "object"},
            "checksum": {"type": ["string", "null"]},
            "os_hash_algo": {"type": ["string", "null"]},
            "os_hash_value": {"type": ["string", "null"]},
            "size": {"type": ["integer", "null"]}}},
    "size": {"type": "integer", "title": "Bytes in the chunk store"}}}


def _plugin_opts():
    return image_backup_opts


class GlanceProtectionPlugin(_cloud.Plugin):
    """``karbor-image-protection-plugin``: Glance images, data in the chunk store."""

    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    GROUP = GROUP
    OPTS = _plugin_opts
    OPERATIONS = {"protect": _Protect, "restore": _Restore, "verify": _Verify,
                  "copy": _Copy, "delete": _Delete}
    OPTIONS_SCHEMA = OPTIONS_SCHEMA
    RESTORE_SCHEMA = RESTORE_SCHEMA
    VERIFY_SCHEMA = VERIFY_SCHEMA
    SAVED_INFO_SCHEMA = SAVED_INFO_SCHEMA
    #: the data is in the bank's chunk store: usable without a cloud's Keystone too
    needs_cloud = False

    def __init__(self, config=None):
        super().__init__(config)
        _chunks.register_opts(config)

    def _operation_arg(self):
        return self._config

    @classmethod
    def get_saved_info(cls, metadata_store, resource):
        """The saved ``metadata`` of ``resource`` from a checkpoint (or None)."""
        try:
            meta = _metadata(metadata_store, resource)
        except Exception:
            return None
        return {"image_metadata": meta["image_metadata"], "size": meta["size"]}
