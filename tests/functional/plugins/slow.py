"""A protection plugin whose main hook takes a while, so tests can interrupt operations.

Written against the documented SDK only (``karbor.services.protection.protection_plugin``).
The sleep comes from the plan parameter ``sleep`` (seconds), a failure from ``fail`` (the
message of the RuntimeError its main hook then raises); every hook run is
appended to ``<bank section>/runs`` so a test can see how often it ran.
"""

import time

from karbor.services.protection import protection_plugin

TYPES = ["OS::Keystone::Project", "OS::Nova::Server"]


class _SlowProtect(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        try:
            runs = section.get_object("runs")
        except Exception:
            runs = 0
        section.update_object("runs", runs + 1)
        section.update_object("status", "protecting")
        time.sleep(float(parameters.get("sleep", 0)))
        if parameters.get("fail"):
            raise RuntimeError(parameters["fail"])
        section.update_object("data", b"\x00\xffslow-plugin-data")
        section.update_object("status", "available")


class _Restore(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        try:
            runs = section.get_object("restore_runs")
        except Exception:
            runs = 0
        section.update_object("restore_runs", runs + 1)
        time.sleep(float(parameters.get("sleep", 0)))
        data = section.get_object("data")
        if data != b"\x00\xffslow-plugin-data":
            raise ValueError("bank data differs from what was protected")
        kwargs["restore"].update_resource_status(resource.type, resource.id, "available")


class _Delete(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.delete_object("data")
        section.update_object("status", "deleted")


class SlowProtectionPlugin(protection_plugin.ProtectionPlugin):
    def get_protect_operation(self, resource):
        return _SlowProtect()

    def get_restore_operation(self, resource):
        return _Restore()

    def get_delete_operation(self, resource):
        return _Delete()

    @classmethod
    def get_supported_resources_types(cls):
        return TYPES

    @classmethod
    def get_options_schema(cls, resource_type):
        return {"type": "object", "title": "Slow options",
                "properties": {"sleep": {"type": "string", "title": "Seconds to sleep"},
                               "fail": {"type": "string",
                                        "title": "Raise RuntimeError with this message"}}}

    @classmethod
    def get_restore_schema(cls, resource_type):
        return {"type": "object",
                "properties": {"sleep": {"type": "string", "title": "Seconds to sleep"}}}
