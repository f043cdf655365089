"""The OpenStack protectables and clients without a cloud (auth_strategy = noauth).

Their behaviour against real services is in tests/integration/test_openstack_protectables.py.
"""

from __future__ import annotations

import pytest

from karbor.common import clients, constants, exception
from karbor.common.config import CONF
from karbor.common.context import RequestContext
from karbor.resource import Resource
from karbor.services.protection.protectable_plugins.image import ImageProtectablePlugin
from karbor.services.protection.protectable_plugins.network import NetworkProtectablePlugin
from karbor.services.protection.protectable_plugins.project import ProjectProtectablePlugin
from karbor.services.protection.protectable_plugins.server import ServerProtectablePlugin
from karbor.services.protection.protectable_plugins.volume import VolumeProtectablePlugin
from karbor.services.protection.protectable_registry import ProtectableRegistry

CLOUD_PLUGINS = (ServerProtectablePlugin, VolumeProtectablePlugin, ImageProtectablePlugin,
                 NetworkProtectablePlugin)


@pytest.fixture
def noauth():
    CONF([], project="karbor-unit-tests")
    CONF.set_override("auth_strategy", "noauth")
    yield RequestContext(user_id="u", project_id="p1", project_name="demo", roles=["admin"])
    CONF.clear_override("auth_strategy")


def test_no_cloud_is_a_clear_503(noauth):
    with pytest.raises(clients.NoCloudConfigured) as info:
        clients.connection(noauth)
    assert info.value.code == 503
    assert "no OpenStack cloud configured" in str(info.value)
    assert not clients.cloud_configured(noauth)


@pytest.mark.parametrize("plugin_cls", CLOUD_PLUGINS)
def test_cloud_types_say_no_cloud(noauth, plugin_cls):
    plugin = plugin_cls()
    for call in (lambda: plugin.list_resources(noauth),
                 lambda: plugin.show_resource(noauth, "some-id")):
        with pytest.raises(exception.KarborException) as info:
            call()
        assert info.value.code == 503, info.value
        assert "no OpenStack cloud configured" in str(info.value)
    project = Resource(constants.PROJECT_RESOURCE_TYPE, "p1", "demo")
    assert plugin.get_dependent_resources(noauth, project) == []


def test_registry_edges_and_noauth_expansion(noauth):
    # loaded in another order than the original's (entry points come sorted by name)
    registry = ProtectableRegistry(
        [cls() for cls in reversed(CLOUD_PLUGINS)] + [ProjectProtectablePlugin()])
    assert registry.list_resource_types()[0] == constants.PROJECT_RESOURCE_TYPE
    # The server's network topology is a child too (an addition to the original's edges).
    assert registry.dependent_types(constants.SERVER_RESOURCE_TYPE) == [
        constants.VOLUME_RESOURCE_TYPE, constants.IMAGE_RESOURCE_TYPE,
        constants.NETWORK_RESOURCE_TYPE]
    assert registry.dependent_types(constants.PROJECT_RESOURCE_TYPE) == [
        constants.SERVER_RESOURCE_TYPE, constants.VOLUME_RESOURCE_TYPE,
        constants.IMAGE_RESOURCE_TYPE, constants.NETWORK_RESOURCE_TYPE]
    for leaf in (constants.VOLUME_RESOURCE_TYPE, constants.IMAGE_RESOURCE_TYPE,
                 constants.NETWORK_RESOURCE_TYPE):
        assert registry.dependent_types(leaf) == []
    project = Resource(constants.PROJECT_RESOURCE_TYPE, "p1", "demo")
    assert registry.fetch_dependent_resources(noauth, project) == []
