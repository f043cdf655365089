"""The progress figures an operation's record shows: what the hook graph and the plugins
report, summed so that a user reading them is never misled (no jump to 99.9 %, no percent
going backwards, no resource left "protecting" once the operation has failed)."""

from __future__ import annotations

from karbor.resource import Resource
from karbor.services.protection import engine
from karbor.services.protection.graph import GraphNode
from karbor.services.protection.progress import OperationProgress
from karbor.services.protection.protection_plugin import Operation

GiB = 1024 ** 3


def _res(name: str) -> Resource:
    return Resource(type="Test::Thing", id=name, name=name)


def test_percent_weighs_every_resource_and_never_goes_back():
    a, b = _res("a"), _res("b")
    tracker = OperationProgress(None, "record", [a, b])
    tracker.resource_started(a, "protecting")
    pa = tracker.for_resource(a)
    pa.report(bytes_total=GiB)
    pa.add(bytes=GiB)
    tracker.resource_finished(a, "available")
    # One of two resources is done, the other has not said how big it is.
    assert tracker.document()["progress"]["percent"] == 50.0
    tracker.resource_started(b, "protecting")
    tracker.for_resource(b).report(bytes_total=100 * GiB)  # its size, late: no drop
    assert tracker.document()["progress"]["percent"] == 50.0
    tracker.for_resource(b).add(bytes=60 * GiB)
    assert tracker.document()["progress"]["percent"] == 80.0
    doc = tracker.finish(True)
    assert doc["progress"]["percent"] == 100.0
    assert doc["summary"]["logical_bytes"] == 61 * GiB


def test_an_odd_figure_from_a_plugin_is_ignored_not_fatal():
    a = _res("a")
    tracker = OperationProgress(None, "record", [a])
    tracker.for_resource(a).report(bytes_total=float("nan"), files_total="many",
                                   bytes_done=5)
    progress = tracker.document()["progress"]
    assert progress["bytes"] == {"total": None, "done": 5}


class _Provider:
    def __init__(self, ops):
        self._ops = ops

    def plugin_for(self, resource_type):
        ops = self._ops

        class Plugin:
            def get_protect_operation(self, resource):
                return ops[resource.id]
        return Plugin()


class _Parent(Operation):
    def on_prepare_begin(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_complete(self, checkpoint, resource, context, parameters, **kwargs):
        pass


class _Failing(Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        raise RuntimeError("disk on fire")


class _Checkpoint:
    bank = None


def test_a_failure_leaves_no_resource_running():
    """The parent began (prepare_begin) and will never complete once its child failed:
    its status says so instead of "protecting" forever."""
    parent, child = GraphNode(_res("parent")), GraphNode(_res("child"))
    parent.child_nodes.append(child)
    tracker = OperationProgress(None, "record", [child.value, parent.value])
    provider = _Provider({"parent": _Parent(), "child": _Failing()})
    try:
        engine.run_hooks(provider, [parent], "protect", _Checkpoint(), None, {}, {},
                         None, tracker)
    except engine.OperationFailed as exc:
        assert "disk on fire" in str(exc)
    else:
        raise AssertionError("the protect did not fail")
    assert tracker.status == {"Test::Thing#child": "error", "Test::Thing#parent": "error"}
    assert tracker.reason["Test::Thing#child"] == "RuntimeError: disk on fire"
    assert "another resource's failure" in tracker.reason["Test::Thing#parent"]
    progress = tracker.finish(False)["progress"]
    assert progress["resources"] == {"total": 2, "done": 2, "failed": 2}
    assert progress["percent"] < 100
