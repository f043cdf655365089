"""Providers: named sets of protection plugins plus a bank, read from ``providers.d/*.conf``."""

from __future__ import annotations

import glob
import logging
import os
import threading
from typing import Any

from oslo_config import cfg
from stevedore import driver

from karbor.common import config, exception
from karbor.services.protection.bank_plugin import Bank, BankPlugin, LeasePlugin
from karbor.services.protection.protection_plugin import ProtectionPlugin

LOG = logging.getLogger(__name__)

PLUGIN_NAMESPACE = "karbor.protections"

provider_opts = [
    cfg.StrOpt("name", help="Name of the provider."),
    cfg.StrOpt("id", help="UUID of the provider."),
    cfg.StrOpt("description", default="", help="What the provider does."),
    cfg.MultiStrOpt("plugin", default=[], help="Protection plugins (entry point or class path)."),
    cfg.StrOpt("bank", help="Bank plugin (entry point or class path)."),
    cfg.StrOpt("copy_bank",
               help="A second bank (entry point or class path) that checkpoint copies go "
                    "to; its options are read from the [copy_bank] section."),
    cfg.BoolOpt("enabled", default=False, help="Whether the provider is offered."),
]


def load_class(name: str, namespace: str = PLUGIN_NAMESPACE):
    """An entry point of ``namespace`` by name, or a ``module:Class``/``module.Class`` path."""
    try:
        return driver.DriverManager(namespace, name, invoke_on_load=False).driver
    except Exception:
        if ":" in name:
            module, _, attr = name.partition(":")
        else:
            module, _, attr = name.rpartition(".")
        if not module:
            raise
        import importlib

        return getattr(importlib.import_module(module), attr)


class Provider:
    def __init__(self, conf: cfg.ConfigOpts, path: str):
        self.config = conf
        self.path = path
        section = conf.provider
        self.id: str = section.id
        self.name: str = section.name
        self.description: str = section.description or ""
        self.plugin_classes: dict[str, type[ProtectionPlugin]] = {}
        for plugin_name in section.plugin:
            cls = load_class(plugin_name)
            for resource_type in cls.get_supported_resources_types():
                self.plugin_classes[resource_type] = cls
        self.bank_names = {"primary": section.bank, "copy": section.copy_bank}
        self._banks: dict[str, Bank] = {}
        self._lock = threading.Lock()

    @property
    def has_copy_bank(self) -> bool:
        return bool(self.bank_names["copy"])

    def bank_for(self, which: str = "primary") -> Bank:
        """The primary bank, or the copy bank (configured in its own ``[copy_bank]`` section)."""
        with self._lock:
            if which not in self._banks:
                name = self.bank_names.get(which)
                if not name:
                    raise exception.BankError(reason=f"provider {self.id} has no {which} bank")
                cls = load_class(name)
                plugin: BankPlugin = (cls(self.config) if which == "primary"
                                      else cls(self.config, group="copy_bank"))
                self._banks[which] = Bank(plugin)
            return self._banks[which]

    @property
    def bank(self) -> Bank:
        return self.bank_for("primary")

    def renew_leases(self) -> None:
        """Keep this process's writer leases alive in every bank it has opened."""
        with self._lock:
            banks = list(self._banks.values())
        for bank in banks:
            if isinstance(bank.plugin, LeasePlugin):
                bank.plugin.renew_lease()

    def plugin_for(self, resource_type: str) -> ProtectionPlugin:
        cls = self.plugin_classes.get(resource_type)
        if cls is None:
            raise exception.ProtectionPluginNotFound(type=resource_type)
        return cls(self.config)

    def _schemas(self, getter: str) -> dict[str, Any]:
        out = {}
        for resource_type, cls in self.plugin_classes.items():
            schema = getattr(cls, getter)(resource_type)
            out[resource_type] = schema if schema is not None else {}
        return out

    def extended_info_schema(self) -> dict[str, Any]:
        return {
            "options_schema": self._schemas("get_options_schema"),
            "restore_schema": self._schemas("get_restore_schema"),
            "saved_info_schema": self._schemas("get_saved_info_schema"),
            "verify_schema": self._schemas("get_verify_schema"),
        }

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "extended_info_schema": self.extended_info_schema()}


def _load_provider(path: str) -> Provider | None:
    conf = cfg.ConfigOpts()
    conf.register_opts(provider_opts, group="provider")
    conf(args=[], default_config_files=[path])
    # Plugins read their own sections; give them the global state path too.
    conf.register_opt(cfg.StrOpt("state_path", default=config.CONF.state_path))
    if not conf.provider.enabled:
        LOG.info("provider file %s is disabled", path)
        return None
    if not conf.provider.id or not conf.provider.name:
        LOG.error("provider file %s lacks a name or an id; skipped", path)
        return None
    provider = Provider(conf, path)
    if config.CONF.auth_strategy != "keystone" and any(
            getattr(cls, "needs_cloud", False) for cls in provider.plugin_classes.values()):
        # Its plugins act on OpenStack services, which only exist with Keystone (as the
        # cloud protectables of the protectable registry).
        LOG.info("provider %s (%s) needs an OpenStack cloud: not offered with auth_strategy "
                 "= %s", provider.name, path, config.CONF.auth_strategy)
        return None
    return provider


class ProviderRegistry:
    def __init__(self, directory: str | None = None):
        self.directory = directory or config.provider_config_dir()
        self.providers: dict[str, Provider] = {}
        for path in sorted(glob.glob(os.path.join(self.directory, "*.conf"))):
            try:
                provider = _load_provider(path)
            except Exception:
                LOG.exception("could not load provider file %s; skipped", path)
                continue
            if provider is None:
                continue
            if provider.id in self.providers:
                LOG.error("provider id %s defined twice (%s); the second is skipped",
                          provider.id, path)
                continue
            self.providers[provider.id] = provider
        if self.providers:
            LOG.info("loaded %d provider(s) from %s", len(self.providers), self.directory)
        else:
            LOG.warning("no provider loaded from %s (provider_config_dir): it %s", self.directory,
                        "holds no enabled provider file" if os.path.isdir(self.directory)
                        else "does not exist")

    def show(self, provider_id: str) -> Provider:
        try:
            return self.providers[provider_id]
        except KeyError:
            raise exception.ProviderNotFound(provider_id=provider_id) from None

    def show_or_invalid(self, provider_id: str) -> Provider:
        """For a provider named in a request body: unknown is a bad request, not a 404."""
        provider = self.providers.get(provider_id)
        if provider is None:
            raise exception.InvalidInput(
                reason=f"provider_id: the provider {provider_id} could not be found.")
        return provider

    def renew_leases(self) -> None:
        for provider in self.providers.values():
            try:
                provider.renew_leases()
            except Exception:
                LOG.exception("could not renew the bank leases of provider %s", provider.id)

    def list(self) -> list[Provider]:
        return sorted(self.providers.values(), key=lambda p: p.id)


_registry: ProviderRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> ProviderRegistry:
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = ProviderRegistry()
        return _registry


def reset_registry() -> None:
    global _registry
    with _registry_lock:
        _registry = None
