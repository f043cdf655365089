"""Karbor::Local::Directory: directories on this machine, directly under configured roots.

The roots are the ``[local_directory] roots`` option of the main ``karbor.conf`` (the
protectable registry builds its plugins without a provider, so the provider file cannot
name them). Nothing outside the roots is ever listed, read or written: the protection
plugin checks every path against the same option.
"""

from __future__ import annotations

import os
import uuid

from oslo_config import cfg

from karbor.common import exception
from karbor.common.config import CONF
from karbor.resource import Resource
from karbor.services.protection.protectable_plugin import ProtectablePlugin

RESOURCE_TYPE = "Karbor::Local::Directory"
# Fixed namespace of the directories' ids: uuid5(NAMESPACE, absolute path).
NAMESPACE = uuid.UUID("6a1d3c52-0b7e-5f8e-9c41-6f0a8d2b7e13")

local_directory_opts = [
    cfg.ListOpt("roots", default=[],
                help="Directories whose direct subdirectories can be protected as "
                     "Karbor::Local::Directory resources. Nothing outside them is read or "
                     "written by the Local Provider's directory plugin."),
]
CONF.register_opts(local_directory_opts, group="local_directory")


def roots() -> list[str]:
    return [os.path.realpath(r) for r in CONF.local_directory.roots if r]


def directory_id(path: str) -> str:
    return str(uuid.uuid5(NAMESPACE, os.path.abspath(path)))


def within_roots(path: str) -> bool:
    """Is ``path`` (resolved) strictly below one of the roots?"""
    real = os.path.realpath(path)
    for root in roots():
        if real != root and os.path.commonpath([real, root]) == root:
            return True
    return False


def check_path(path: str) -> str:
    """The resolved path, or InvalidInput when it is not under the configured roots."""
    if not path or not os.path.isabs(path) or not within_roots(path):
        raise exception.InvalidInput(
            reason=f"{path!r} is not under the [local_directory] roots")
    return os.path.realpath(path)


def _resource(path: str) -> Resource:
    return Resource(type=RESOURCE_TYPE, id=directory_id(path), name=path,
                    extra_info={"path": path})


class DirectoryProtectablePlugin(ProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = RESOURCE_TYPE

    def get_parent_resource_types(self):
        return ()

    def list_resources(self, context, parameters=None):
        found = []
        for root in roots():
            try:
                entries = sorted(os.scandir(root), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    found.append(_resource(os.path.join(root, entry.name)))
        return found

    def show_resource(self, context, resource_id, parameters=None):
        for resource in self.list_resources(context):
            if resource.id == resource_id:
                return resource
        raise exception.ProtectableResourceNotFound(
            resource_id=resource_id, resource_type=RESOURCE_TYPE,
            reason="no directory with that id under the configured roots")

    def get_dependent_resources(self, context, parent_resource):
        return []
