"""Karbor::Local::Directory: directories on this machine, directly under configured roots.

The roots are the ``[local_directory] roots`` option of the main ``karbor.conf`` (the
protectable registry builds its plugins without a provider, so the provider file cannot
name them). Nothing outside the roots is ever listed, read or written: the protection
plugin checks every path against the same option.

A root may name the one project that owns it (``/srv/a:<project id>``): its directories are
listed to, protected for and restored over by that project only, so one tenant can neither
read another's files through a checkpoint nor restore over them. A root without an owner is
shared by every project (the embedded single-user default).
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
                     "Karbor::Local::Directory resources, each PATH or PATH:PROJECT_ID. "
                     "A root with a project id is that project's alone (listed, "
                     "protected and restored over by it only); a root without one is "
                     "shared by every project. Nothing outside them is read or written "
                     "by the Local Provider's directory plugin."),
]
CONF.register_opts(local_directory_opts, group="local_directory")


def _split_root(entry: str) -> tuple[str, str | None]:
    """``PATH[:PROJECT]``: the text after the last ``:`` is an owner when it names no path
    (so ``/srv/a:b/c`` stays a path)."""
    head, sep, tail = entry.rpartition(":")
    if sep and head and tail and "/" not in tail:
        return head, tail
    return entry, None


def root_owners() -> dict[str, str | None]:
    """Each resolved root and the project that owns it (None: shared)."""
    out: dict[str, str | None] = {}
    for entry in CONF.local_directory.roots:
        if entry:
            path, owner = _split_root(entry.strip())
            out[os.path.realpath(path)] = owner
    return out


def roots(project_id: str | None = None) -> list[str]:
    """The roots ``project_id`` may use (every root for None: the service's own calls)."""
    return [root for root, owner in root_owners().items()
            if project_id is None or owner is None or owner == project_id]


def project_of(context) -> str | None:
    return getattr(context, "project_id", None) if context is not None else None


def directory_id(path: str) -> str:
    return str(uuid.uuid5(NAMESPACE, os.path.abspath(path)))


def within_roots(path: str, project_id: str | None = None) -> bool:
    """Is ``path`` (resolved) strictly below one of the roots ``project_id`` may use?"""
    real = os.path.realpath(path)
    for root in roots(project_id):
        if real != root and os.path.commonpath([real, root]) == root:
            return True
    return False


def check_path(path: str, project_id: str | None = None) -> str:
    """The resolved path, or InvalidInput when it is not under the roots that
    ``project_id`` may use (the same words whether the root is another project's or
    absent, so a caller learns nothing of other tenants' directories)."""
    if not path or not os.path.isabs(path) or not within_roots(path, project_id):
        whose = "" if project_id is None else " open to this project"
        raise exception.InvalidInput(
            reason=f"{path!r} is not under the [local_directory] roots{whose}")
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
        for root in roots(project_of(context)):
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
            reason="no directory with that id under the roots open to this project")

    def get_dependent_resources(self, context, parent_resource):
        return []
