"""A third-party protection plugin, written only against Karbor's documented plugin SDK.

It is found through its ``karbor.protections`` entry point (see the dist-info
beside it), as a plugin package installed next to Karbor would be.  Each hook
leaves a trace in the bank so tests can see which hooks ran, in which order.
"""

from karbor.services.protection import protection_plugin

PAYLOAD = b"\x00\x01binary payload\xff"


def _trace(checkpoint, resource, name):
    section = checkpoint.get_resource_bank_section(resource.id)
    try:
        seen = section.get_object("trace")
    except Exception:
        seen = []
    section.update_object("trace", seen + [name])


class _Protect(protection_plugin.Operation):
    def on_prepare_begin(self, checkpoint, resource, context, parameters, **kwargs):
        _trace(checkpoint, resource, "protect:prepare_begin")

    def on_prepare_finish(self, checkpoint, resource, context, parameters, **kwargs):
        _trace(checkpoint, resource, "protect:prepare_finish")

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("data", PAYLOAD + parameters.get("tag", "").encode())
        _trace(checkpoint, resource, "protect:main")

    def on_complete(self, checkpoint, resource, context, parameters, **kwargs):
        checkpoint.get_resource_bank_section(resource.id).update_object("status", "available")
        _trace(checkpoint, resource, "protect:complete")


class _Restore(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        data = checkpoint.get_resource_bank_section(resource.id).get_object("data")
        if not data.startswith(PAYLOAD):
            raise ValueError("the protected data is not in the bank")
        new_id = "restored-" + resource.id
        kwargs["new_resources"][resource.id] = new_id
        kwargs["restore"].update_resource_status(resource.type, new_id, "available",
                                                 parameters.get("restore_name"))


class _Verify(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        data = checkpoint.get_resource_bank_section(resource.id).get_object("data")
        ok = data.startswith(PAYLOAD)
        kwargs["verify"].update_resource_status(resource.type, resource.id,
                                                "available" if ok else "error",
                                                None if ok else "payload differs")
        if not ok:
            raise ValueError("payload differs")


class _Copy(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        target = kwargs["checkpoint_copy"].get_resource_bank_section(resource.id)
        target.update_object("copied_by_plugin", True)


class _Delete(protection_plugin.Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        for key in ("data", "trace", "copied_by_plugin"):
            section.delete_object(key)
        section.update_object("status", "deleted")


class TestProtectionPlugin(protection_plugin.ProtectionPlugin):
    def get_protect_operation(self, resource):
        return _Protect()

    def get_restore_operation(self, resource):
        return _Restore()

    def get_verify_operation(self, resource):
        return _Verify()

    def get_copy_operation(self, resource):
        return _Copy()

    def get_delete_operation(self, resource):
        return _Delete()

    @classmethod
    def get_supported_resources_types(cls):
        return ["OS::Keystone::Project"]

    @classmethod
    def get_options_schema(cls, resource_type):
        return {"type": "object", "properties": {"tag": {"type": "string"}}}

    @classmethod
    def get_restore_schema(cls, resource_type):
        return {"type": "object", "properties": {"restore_name": {"type": "string"}}}
