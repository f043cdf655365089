"""The OpenStack providers are offered only when Karbor runs with Keystone (no cloud needed).

In no-auth mode there is no OpenStack cloud to act on, so providers whose plugins need one
(the Cinder backup and snapshot plugins) are hidden, as the cloud protectables are; the
embedded default keeps listing the providers it listed before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import karbor
from karbor.common import config
from karbor.common.config import CONF
from karbor.services.protection import provider as provider_mod

BUILTIN = Path(karbor.__file__).parent / "etc" / "providers.d"
OS_PROVIDERS = {
    "cf56bd3e-97a7-4078-b6d5-f36246333fd9": ("OS Infra Provider", "karbor-swift-bank-plugin"),
    "90d5bfea-a259-41e6-80c6-dcfcfcd9d827": ("OS Infra Provider with volume snapshot plugin",
                                             "karbor-swift-bank-plugin"),
    "6659007d-6f66-4a0f-9cb4-17d6aded0bb9": ("OS Infra Provider with local file system bank",
                                             "karbor-fs-bank-plugin"),
    "3b7c2e5d-9f41-4a6b-8d0e-5c2f7a1b9e64": ("OS Infra Provider with S3 bank",
                                             "karbor-s3-bank-plugin"),
}


@pytest.fixture
def conf() -> Iterator[None]:
    config.parse_args([], "karbor-provider-tests")
    yield
    CONF.clear_override("auth_strategy")


def test_openstack_providers_hidden_without_keystone(conf):
    ids = {p.id for p in provider_mod.ProviderRegistry(str(BUILTIN)).list()}
    assert "b766f37c-d011-4026-8228-28730d734a3f" in ids  # the No-Op Provider stays
    assert not ids & set(OS_PROVIDERS), ids


def test_openstack_providers_offered_with_keystone(conf):
    CONF.set_override("auth_strategy", "keystone")
    providers = {p.id: p for p in provider_mod.ProviderRegistry(str(BUILTIN)).list()}
    assert set(OS_PROVIDERS) <= set(providers)
    for provider_id, (name, bank) in OS_PROVIDERS.items():
        provider = providers[provider_id]
        assert provider.name == name
        assert provider.bank_names["primary"] == bank
        volume = provider.plugin_classes["OS::Cinder::Volume"]
        assert volume.__name__ == ("VolumeSnapshotProtectionPlugin"
                                   if "snapshot" in name else "CinderBackupProtectionPlugin")
        schemas = provider.extended_info_schema()
        assert set(schemas) == {"options_schema", "restore_schema", "saved_info_schema",
                                "verify_schema"}
        # every OpenStack resource type the original's OS Infra Provider covered
        assert {"OS::Glance::Image", "OS::Nova::Server", "OS::Neutron::Network",
                "OS::Manila::Share", "OS::Trove::Instance"} <= set(provider.plugin_classes)
