"""Protection plugin for OS::Nova::Server: the server's definition, not its disks.

A server's disks are its children in the resource graph (its boot image, its attached
volumes) and are protected by their own plugins; this plugin records what is needed to
build the server again around their restored copies: flavor, networks and fixed IPs,
security groups, key pair, availability zone, metadata, each attached volume with its
device, the boot source, floating IPs. Restore runs in the ``complete`` hook, which the
plugin guide orders after every child's hooks, so ``new_resources`` already maps the
original image and volumes to their restored copies. A ``restore_flavor_id`` or
``restore_net_id`` that does not exist fails the restore in ``prepare_begin``, before any
child is restored (nothing is made). A server that does not become ACTIVE within
``poll_timeout``, or a volume that does not attach, fails the restore and the new server is
deleted again.
"""

from __future__ import annotations

import logging

from karbor.common import clients, constants
from karbor.services.protection.protection_plugins import _cloud

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.SERVER_RESOURCE_TYPE
GROUP = "nova_backup_protection_plugin"
DEFAULT_NAME = "karbor-restore-server"

SERVER_WAITING = ("BUILD", "HARD_REBOOT", "PASSWORD", "REBOOT", "RESCUE", "RESIZE",
                  "REVERT_RESIZE", "VERIFY_RESIZE", "MIGRATING")
SERVER_FAILED = ("ERROR", "DELETED", "SOFT_DELETED", "UNKNOWN", _cloud.NOT_FOUND)
VOLUME_ATTACHING = ("available", "attaching", "reserved")


def _opts():
    return _cloud.poll_opts(default_interval=5, default_timeout=1800)


def _flavor(server) -> dict:
    flavor = server.flavor
    if flavor is None:
        return {}
    get = flavor.get if isinstance(flavor, dict) else (lambda k: getattr(flavor, k, None))
    return {k: get(k) for k in ("id", "name", "original_name", "vcpus", "ram", "disk")
            if get(k) is not None}


def describe(conn, server_id: str) -> dict:
    """Everything the restore needs, read from Nova, Cinder and Neutron."""
    server = _cloud.call(f"get server {server_id}", conn.compute.get_server, server_id)
    attachments = []
    for att in _cloud.call(f"list the volumes of server {server_id}",
                           lambda: list(conn.compute.volume_attachments(server_id))):
        volume = _cloud.call(f"get volume {att.volume_id}", conn.block_storage.get_volume,
                             att.volume_id)
        attachments.append({"volume_id": att.volume_id, "device": att.device,
                            "bootable": str(getattr(volume, "is_bootable", False)).lower()
                            in ("true", "1")})
    image = server.image or {}
    image_id = image.get("id") if isinstance(image, dict) else getattr(image, "id", None)
    if image_id:
        boot = {"boot_device_type": "image", "boot_image_id": image_id}
    else:
        root = server.root_device_name
        boot_vol = next((a for a in attachments if root and a["device"] == root), None) \
            or next((a for a in attachments if a["bootable"]), None)
        boot = {"boot_device_type": "volume",
                "boot_volume_id": boot_vol["volume_id"] if boot_vol else None,
                "boot_device": boot_vol["device"] if boot_vol else None}
    ports = _cloud.call(f"list the ports of server {server_id}",
                        lambda: list(conn.network.ports(device_id=server_id)))
    networks = []
    for port in ports:
        networks.append({"network_id": port.network_id, "port_id": port.id,
                         "mac_address": port.mac_address,
                         "fixed_ips": [ip.get("ip_address") for ip in port.fixed_ips or []]})
    floating = []
    for port in ports:
        try:
            fips = list(conn.network.ips(port_id=port.id))
        except Exception as exc:
            if clients.is_not_found(exc):
                break  # this Neutron has no floating IPs (no l3 extension)
            raise clients.translate(exc, "list floating IPs") from exc
        for fip in fips:
            floating.append({"floating_ip_address": fip.floating_ip_address,
                             "fixed_ip_address": fip.fixed_ip_address,
                             "network_id": port.network_id})
    return {
        "resource_id": server_id, "name": server.name,
        "attach_metadata": attachments, "boot_metadata": boot,
        "server_metadata": {
            "availability_zone": server.availability_zone,
            "networks": networks, "floating_ips": floating,
            "flavor": _flavor(server), "key_name": server.key_name,
            "security_groups": sorted({g.get("name") for g in server.security_groups or []
                                       if g.get("name")}),
            "metadata": dict(server.metadata or {}),
        },
    }


class _Protect(_cloud.DefinitionProtect):
    describe = staticmethod(describe)


def _metadata(checkpoint, resource) -> dict:
    section = checkpoint.get_resource_bank_section(resource.id)
    try:
        return section.get_object("metadata")
    except Exception:
        raise _cloud.CloudError(reason=f"no saved definition of server {resource.id} in "
                                       "the bank") from None


def _flavor_id(conn, saved: dict, parameters: dict) -> str:
    wanted = parameters.get("restore_flavor_id")
    if wanted:
        # checked before anything is created: Nova's own answer ("Invalid flavorRef
        # provided") would not say which parameter is wrong
        found = _cloud.call(f"find flavor {wanted}", conn.compute.find_flavor, wanted,
                            ignore_missing=True)
        if found is None:
            raise _cloud.CloudError(reason=f"restore_flavor_id {wanted}: no such flavor")
        return found.id
    for key in ("id", "original_name", "name"):
        value = saved.get(key)
        if value:
            found = _cloud.call(f"find flavor {value}", conn.compute.find_flavor, value,
                                ignore_missing=True)
            if found is not None:
                return found.id
    raise _cloud.CloudError(reason=f"the server's flavor {saved} no longer exists; give "
                                   "restore_flavor_id")


class _Restore(_cloud.Operation):
    def on_prepare_begin(self, checkpoint, resource, context, parameters, **kwargs):
        """The restore parameters that name cloud objects are checked before any child
        (image, volumes, network) is restored: a restore that cannot make the server fails
        without making anything."""
        flavor = parameters.get("restore_flavor_id")
        net_id = parameters.get("restore_net_id")
        if not flavor and not net_id:
            return
        try:
            conn = _cloud.connection(context, kwargs)
            if flavor:
                _flavor_id(conn, {}, parameters)
            if net_id and _cloud.call(f"find network {net_id}", conn.network.find_network,
                                      net_id, ignore_missing=True) is None:
                raise _cloud.CloudError(reason=f"restore_net_id {net_id}: no such network")
        except Exception as exc:
            _cloud.record(kwargs, "restore", resource.type, resource.id, "error",
                          _cloud.reason_of(exc))
            raise

    def on_complete(self, checkpoint, resource, context, parameters, **kwargs):
        new_resources = kwargs.get("new_resources", {})
        server_id = None
        conn = None
        try:
            md = _metadata(checkpoint, resource)
            conn = _cloud.connection(context, kwargs)
            server_md = md["server_metadata"]
            boot = md["boot_metadata"]
            attrs: dict = {
                "name": parameters.get("restore_name") or DEFAULT_NAME,
                "flavor_id": _flavor_id(conn, server_md.get("flavor") or {}, parameters),
            }
            if server_md.get("availability_zone"):
                attrs["availability_zone"] = server_md["availability_zone"]
            if server_md.get("key_name"):
                attrs["key_name"] = server_md["key_name"]
            if server_md.get("security_groups"):
                attrs["security_groups"] = [{"name": n} for n in server_md["security_groups"]]
            if server_md.get("metadata"):
                attrs["metadata"] = server_md["metadata"]
            net_id = parameters.get("restore_net_id")
            if net_id:
                attrs["networks"] = [{"uuid": net_id}]
            elif server_md.get("networks"):
                attrs["networks"] = [{"uuid": new_resources.get(n["network_id"],
                                                                n["network_id"])}
                                     for n in server_md["networks"]]
            else:
                attrs["networks"] = "none"
            attached = list(md["attach_metadata"])
            if boot["boot_device_type"] == "image":
                attrs["image_id"] = new_resources.get(boot["boot_image_id"],
                                                      boot["boot_image_id"])
            else:
                original = boot.get("boot_volume_id")
                volume_id = new_resources.get(original)
                if not volume_id:
                    raise _cloud.CloudError(reason=f"the boot volume {original} was not "
                                                   "restored (is it in the plan?)")
                attrs["block_device_mapping"] = [{
                    "uuid": volume_id, "source_type": "volume",
                    "destination_type": "volume", "boot_index": 0,
                    "delete_on_termination": False}]
                attached = [a for a in attached if a["volume_id"] != original]
            server = _cloud.call("create the restored server", conn.compute.create_server,
                                 **attrs)
            server_id = server.id
            _cloud.record(kwargs, "restore", resource.type, server_id, "restoring")
            _cloud.wait(lambda: conn.compute.get_server(server_id), success=("ACTIVE",),
                        failure=SERVER_FAILED, waiting=SERVER_WAITING,
                        interval=self._opts.poll_interval, timeout=self._opts.poll_timeout,
                        what=f"restored server {server_id}",
                        reason=lambda s: (s.fault or {}).get("message")
                        if isinstance(s.fault, dict) else None)
            for att in attached:
                new_volume = new_resources.get(att["volume_id"])
                if not new_volume:
                    LOG.warning("volume %s of server %s was not restored; not attached",
                                att["volume_id"], resource.id)
                    continue
                _cloud.call(f"attach volume {new_volume} to server {server_id}",
                            conn.compute.create_volume_attachment, server_id,
                            new_volume, device=att.get("device"))
                _cloud.wait(lambda v=new_volume: conn.block_storage.get_volume(v),
                            success=("in-use",), failure=("error", "error_attaching",
                                                          _cloud.NOT_FOUND),
                            waiting=VOLUME_ATTACHING, interval=self._opts.poll_interval,
                            timeout=self._opts.poll_timeout,
                            what=f"volume {new_volume} attaching to server {server_id}")
        except Exception as exc:
            reason = _cloud.reason_of(exc)
            _cloud.record(kwargs, "restore", resource.type, server_id or resource.id, "error",
                          reason)
            if server_id and conn is not None:
                _cloud.quietly(f"delete the half-restored server {server_id}",
                               conn.compute.delete_server, server_id, ignore_missing=True)
            raise
        new_resources[resource.id] = server_id
        _cloud.record(kwargs, "restore", resource.type, server_id, "available")


class _Verify(_cloud.DefinitionVerify):
    what = "the server's definition"


OPTIONS_SCHEMA = {"title": "Server Protection Options", "type": "object", "properties": {}}

RESTORE_SCHEMA = {"title": "Server Protection Restore", "type": "object", "properties": {
    "restore_name": {"type": "string", "title": "Restore Server Name",
                     "description": "The name of the restored server."},
    "restore_net_id": {"type": "string", "title": "Restore Network Id",
                       "description": "The network the restored server joins "
                                      "(default: its original networks)."},
    "restore_flavor_id": {"type": "string", "title": "Restore Flavor Id",
                          "description": "The flavor of the restored server "
                                         "(default: its original flavor)."}}}

VERIFY_SCHEMA = {"title": "Server Protection Verify", "type": "object", "properties": {}}

SAVED_INFO_SCHEMA = {"title": "Server Protection Saved Info", "type": "object", "properties": {
    "attach_metadata": {"type": "array", "title": "Attached volumes",
                        "description": "Volume id, device and bootable flag of "
                                       "each attached volume."},
    "boot_metadata": {"type": "object", "title": "Boot source"}}}


class NovaProtectionPlugin(_cloud.Plugin):
    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    GROUP = GROUP
    OPTS = _opts
    OPERATIONS = {"protect": _Protect, "restore": _Restore, "verify": _Verify,
                  "delete": _cloud.DefinitionDelete, "copy": _cloud.DefinitionCopy}
    OPTIONS_SCHEMA = OPTIONS_SCHEMA
    RESTORE_SCHEMA = RESTORE_SCHEMA
    VERIFY_SCHEMA = VERIFY_SCHEMA
    SAVED_INFO_SCHEMA = SAVED_INFO_SCHEMA
