"""The No-Op plugin: accepts every OpenStack resource type and does nothing to it.

It still records, through the bank, that each resource went through every
operation, so that tests and users can see the engine at work.
"""

from __future__ import annotations

from karbor.common import constants
from karbor.services.protection import protection_plugin


class _NoopOperation(protection_plugin.Operation):
    def __init__(self, status: str | None):
        self._status = status

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        for key in ("restore", "verify"):
            recorder = kwargs.get(key)
            if recorder is not None:
                recorder.update_resource_status(resource.type, resource.id, "available")
        if self._status is None:
            return
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", self._status)


class NoopProtectionPlugin(protection_plugin.ProtectionPlugin):
    _SUPPORT_RESOURCE_TYPES = constants.RESOURCE_TYPES

    def get_protect_operation(self, resource):
        return _NoopOperation("available")

    def get_restore_operation(self, resource):
        return _NoopOperation(None)

    def get_verify_operation(self, resource):
        return _NoopOperation(None)

    def get_copy_operation(self, resource):
        return _NoopOperation(None)

    def get_delete_operation(self, resource):
        return _NoopOperation("deleted")

    @classmethod
    def get_supported_resources_types(cls):
        return list(cls._SUPPORT_RESOURCE_TYPES)

    @classmethod
    def get_options_schema(cls, resource_type):
        return {}

    @classmethod
    def get_saved_info_schema(cls, resource_type):
        return {}

    @classmethod
    def get_restore_schema(cls, resource_type):
        return {}

    @classmethod
    def get_verify_schema(cls, resource_type):
        return {}
