"""Protection plugin for OS::Neutron::Network: a project's network topology.

The resource is the project's topology (its id is the project id): networks, subnets,
routers with their interfaces and external gateways, security groups with their rules and
free-standing ports. Protect saves their definitions in the bank; restore creates them
again, in dependency order, and maps every original id to the new one in
``new_resources`` so that a server restored in the same operation joins the new networks.
If any creation fails, what this restore created is deleted again, newest first.

Ports owned by servers, DHCP agents, routers and floating IPs are not recreated: servers
get new ports when they are restored, and Neutron makes the others itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from karbor.common import clients, constants
from karbor.services.protection.protection_plugins import _cloud

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.NETWORK_RESOURCE_TYPE
GROUP = "neutron_backup_protection_plugin"

NETWORK_KEYS = ("id", "name", "description", "is_admin_state_up", "mtu",
                "is_port_security_enabled", "is_router_external", "is_shared", "subnet_ids",
                # seen by administrators only; needed where tenants cannot allocate networks
                "provider_network_type", "provider_physical_network",
                "provider_segmentation_id")
SUBNET_KEYS = ("id", "name", "description", "network_id", "cidr", "ip_version",
               "is_dhcp_enabled", "gateway_ip", "allocation_pools", "dns_nameservers",
               "host_routes", "ipv6_address_mode", "ipv6_ra_mode")
PORT_KEYS = ("id", "name", "description", "network_id", "fixed_ips", "mac_address",
             "device_owner", "device_id", "security_group_ids", "is_admin_state_up",
             "allowed_address_pairs", "is_port_security_enabled")
ROUTER_KEYS = ("id", "name", "description", "is_admin_state_up", "external_gateway_info",
               "routes")
SKIPPED_OWNERS = ("network:dhcp", "network:router_gateway", "network:floatingip",
                  "network:router_interface", "network:router_ha_interface",
                  "network:router_interface_distributed")


def _pick(obj, keys) -> dict:
    return {k: getattr(obj, k, None) for k in keys}


def describe(conn, project_id: str) -> dict:
    """The project's topology as plain JSON."""
    def listing(what, fn, optional=False):
        try:
            return list(fn())
        except Exception as exc:
            if optional and clients.is_not_found(exc):
                return []  # an API extension this Neutron does not run (routers: l3)
            raise clients.translate(exc, f"list the project's {what}") from exc

    networks = [n for n in listing("networks",
                                   lambda: conn.network.networks(project_id=project_id))]
    subnets = listing("subnets", lambda: conn.network.subnets(project_id=project_id))
    ports = listing("ports", lambda: conn.network.ports(project_id=project_id))
    routers = listing("routers", lambda: conn.network.routers(project_id=project_id),
                      optional=True)
    groups = listing("security groups",
                     lambda: conn.network.security_groups(project_id=project_id))
    interfaces = [{"router_id": p.device_id, "subnet_id": ip.get("subnet_id"),
                   "ip_address": ip.get("ip_address")}
                  for p in ports if p.device_owner == "network:router_interface"
                  for ip in p.fixed_ips or []]
    return {
        "resource_id": project_id,
        "network_metadata": [_pick(n, NETWORK_KEYS) for n in networks],
        "subnet_metadata": [_pick(s, SUBNET_KEYS) for s in subnets],
        "port_metadata": [_pick(p, PORT_KEYS) for p in ports],
        "router_metadata": [_pick(r, ROUTER_KEYS) for r in routers],
        "router_interfaces": interfaces,
        "security-group_metadata": [
            {"id": g.id, "name": g.name, "description": g.description,
             "rules": [{k: r.get(k) for k in ("direction", "ethertype", "protocol",
                                              "port_range_min", "port_range_max",
                                              "remote_ip_prefix", "remote_group_id",
                                              "description")}
                       for r in g.security_group_rules or []]}
            for g in groups],
    }


class _Protect(_cloud.DefinitionProtect):
    describe = staticmethod(describe)


def _is_default_rule(rule: dict) -> bool:
    """The egress rules Neutron adds to every new group by itself."""
    return (rule.get("direction") == "egress" and not rule.get("protocol")
            and not rule.get("remote_ip_prefix") and not rule.get("remote_group_id")
            and rule.get("port_range_min") is None)


class _Builder:
    """Creates the topology and remembers what it created, to undo it on failure."""

    def __init__(self, conn, prefix: str | None, public_network_id: str | None):
        self.conn = conn
        self.prefix = prefix
        self.public_network_id = public_network_id
        self.ids: dict[str, str] = {}
        self.undo: list[tuple[str, Callable[[], object]]] = []

    def name(self, original: str | None) -> str:
        original = original or ""
        return f"{self.prefix}-{original}" if self.prefix and original else \
            (self.prefix or original)

    def build(self, md: dict) -> None:
        net = self.conn.network
        for n in md.get("network_metadata", []):
            if n.get("is_router_external"):
                self.ids[n["id"]] = n["id"]   # shared infrastructure: used as it is
                continue
            attrs = {"name": self.name(n.get("name")), "description": n.get("description"),
                     "admin_state_up": n.get("is_admin_state_up", True)}
            if n.get("is_port_security_enabled") is not None:
                attrs["port_security_enabled"] = n["is_port_security_enabled"]
            if n.get("mtu"):
                attrs["mtu"] = n["mtu"]
            for key in ("provider_network_type", "provider_physical_network",
                        "provider_segmentation_id"):
                if n.get(key) is not None:
                    attrs[key] = n[key]
            new = _cloud.call(f"create network {n.get('name')!r}", net.create_network, **attrs)
            self.ids[n["id"]] = new.id
            self.undo.append((f"delete network {new.id}",
                              lambda i=new.id: net.delete_network(i, ignore_missing=True)))
        for s in md.get("subnet_metadata", []):
            if s["network_id"] not in self.ids or self.ids[s["network_id"]] == s["network_id"]:
                continue
            attrs = {"network_id": self.ids[s["network_id"]], "cidr": s["cidr"],
                     "ip_version": s["ip_version"], "name": self.name(s.get("name")),
                     "description": s.get("description"),
                     "enable_dhcp": bool(s.get("is_dhcp_enabled")),
                     "gateway_ip": s.get("gateway_ip")}
            for key in ("allocation_pools", "dns_nameservers", "host_routes",
                        "ipv6_address_mode", "ipv6_ra_mode"):
                if s.get(key):
                    attrs[key] = s[key]
            new = _cloud.call(f"create subnet {s['cidr']}", net.create_subnet, **attrs)
            self.ids[s["id"]] = new.id
            self.undo.append((f"delete subnet {new.id}",
                              lambda i=new.id: net.delete_subnet(i, ignore_missing=True)))
        self._groups(md.get("security-group_metadata", []))
        for r in md.get("router_metadata", []):
            attrs = {"name": self.name(r.get("name")), "description": r.get("description"),
                     "admin_state_up": r.get("is_admin_state_up", True)}
            gateway = r.get("external_gateway_info") or {}
            if gateway and self.public_network_id:
                attrs["external_gateway_info"] = {"network_id": self.public_network_id}
            elif gateway.get("network_id"):
                attrs["external_gateway_info"] = {"network_id": gateway["network_id"]}
            new = _cloud.call(f"create router {r.get('name')!r}", net.create_router, **attrs)
            self.ids[r["id"]] = new.id
            self.undo.append((f"delete router {new.id}",
                              lambda i=new.id: net.delete_router(i, ignore_missing=True)))
        for itf in md.get("router_interfaces", []):
            router = self.ids.get(itf["router_id"])
            subnet = self.ids.get(itf["subnet_id"])
            if not router or not subnet:
                continue
            _cloud.call(f"attach subnet {subnet} to router {router}",
                        net.add_interface_to_router, router, subnet_id=subnet)
            self.undo.append((f"detach subnet {subnet} from router {router}",
                              lambda r=router, s=subnet: net.remove_interface_from_router(
                                  r, subnet_id=s)))
        for p in md.get("port_metadata", []):
            owner = p.get("device_owner") or ""
            if owner in SKIPPED_OWNERS or owner.startswith("compute:") \
                    or p["network_id"] not in self.ids:
                continue
            attrs = {"network_id": self.ids[p["network_id"]], "name": self.name(p.get("name")),
                     "description": p.get("description"),
                     "fixed_ips": [{"subnet_id": self.ids.get(ip.get("subnet_id"),
                                                              ip.get("subnet_id")),
                                    "ip_address": ip.get("ip_address")}
                                   for ip in p.get("fixed_ips") or []]}
            if p.get("security_group_ids"):
                attrs["security_groups"] = [self.ids.get(g, g)
                                            for g in p["security_group_ids"]]
            new = _cloud.call(f"create port {p.get('name') or p['id']}", net.create_port,
                              **attrs)
            self.ids[p["id"]] = new.id
            self.undo.append((f"delete port {new.id}",
                              lambda i=new.id: net.delete_port(i, ignore_missing=True)))

    def _groups(self, groups: list[dict]) -> None:
        net = self.conn.network
        existing = {g.name: g.id for g in _cloud.call(
            "list security groups",
            lambda: list(net.security_groups(project_id=self.conn.current_project_id)))}
        created = []
        for g in groups:
            if g.get("name") == "default":
                # Every project has exactly one; the restored ports use the target's.
                if "default" in existing:
                    self.ids[g["id"]] = existing["default"]
                continue
            new = _cloud.call(f"create security group {g.get('name')!r}",
                              net.create_security_group, name=self.name(g.get("name")),
                              description=g.get("description") or "")
            self.ids[g["id"]] = new.id
            created.append(g)
            self.undo.append((f"delete security group {new.id}",
                              lambda i=new.id: net.delete_security_group(
                                  i, ignore_missing=True)))
        for g in created:
            for rule in g.get("rules") or []:
                if _is_default_rule(rule):
                    continue
                attrs = {"security_group_id": self.ids[g["id"]],
                         "direction": rule.get("direction"),
                         "ethertype": rule.get("ethertype") or "IPv4"}
                for key in ("protocol", "port_range_min", "port_range_max",
                            "remote_ip_prefix", "description"):
                    if rule.get(key) is not None:
                        attrs[key] = rule[key]
                if rule.get("remote_group_id"):
                    attrs["remote_group_id"] = self.ids.get(rule["remote_group_id"],
                                                            rule["remote_group_id"])
                _cloud.call(f"add a rule to security group {g.get('name')!r}",
                            net.create_security_group_rule, **attrs)

    def rollback(self) -> None:
        for what, fn in reversed(self.undo):
            _cloud.quietly(what, fn)


class _Restore(_cloud.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        try:
            section = checkpoint.get_resource_bank_section(resource.id)
            try:
                md = section.get_object("metadata")
            except Exception:
                raise _cloud.CloudError(reason="no saved network topology in the bank") \
                    from None
            builder = _Builder(_cloud.connection(context, kwargs),
                               parameters.get("restore_name"),
                               parameters.get("public_network_id"))
            try:
                builder.build(md)
            except Exception:
                builder.rollback()
                raise
        except Exception as exc:
            _cloud.record(kwargs, "restore", resource.type, resource.id, "error",
                          _cloud.reason_of(exc))
            raise
        new_resources = kwargs.get("new_resources", {})
        new_resources.update({old: new for old, new in builder.ids.items() if old != new})
        new_resources[resource.id] = resource.id
        _cloud.record(kwargs, "restore", resource.type, resource.id, "available")


class _Verify(_cloud.DefinitionVerify):
    what = "the network topology"


OPTIONS_SCHEMA = {"title": "Network Protection Options", "type": "object", "properties": {}}

RESTORE_SCHEMA = {"title": "Network Protection Restore", "type": "object", "properties": {
    "restore_name": {"type": "string", "title": "Restore Network Name",
                     "description": "A prefix for the names of the restored "
                                    "networks, subnets, routers and groups."},
    "public_network_id": {"type": "string", "title": "Public network id",
                          "description": "The external network of the restored "
                                         "routers' gateways (default: the "
                                         "original one)."}}}

VERIFY_SCHEMA = {"title": "Network Protection Verify", "type": "object", "properties": {}}


class NeutronProtectionPlugin(_cloud.Plugin):
    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    GROUP = GROUP
    OPTS = _cloud.poll_opts
    OPERATIONS = {"protect": _Protect, "restore": _Restore, "verify": _Verify,
                  "delete": _cloud.DefinitionDelete, "copy": _cloud.DefinitionCopy}
    OPTIONS_SCHEMA = OPTIONS_SCHEMA
    RESTORE_SCHEMA = RESTORE_SCHEMA
    VERIFY_SCHEMA = VERIFY_SCHEMA
