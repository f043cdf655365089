"""Protect throughput: checkpoint-create → available for plans of 1 … 10,000 no-op resources.

The graph fans out: the plan names one project, and a protectable plugin (installed
for this run through an entry point, as a plugin package would be) makes N servers
depend on it.  Prints wall time and per-resource overhead next to the original
Karbor 1.6.0 figures measured on this kind of machine.  Not a test.

    python benchmarks/engine.py [N ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.functional._server import karbor_server  # noqa: E402

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
ORIGINAL = {1: 0.093, 10: 0.110, 100: 1.37}
SIZES = [int(a) for a in sys.argv[1:]] or [1, 10, 100, 1000, 10000]

PLUGIN = textwrap.dedent('''
    """Servers that depend on a project named fanout-<N>: N of them."""
    from karbor.resource import Resource
    from karbor.services.protection.protectable_plugin import ProtectablePlugin

    class FanOut(ProtectablePlugin):
        _SUPPORT_RESOURCE_TYPE = "OS::Nova::Server"

        def get_parent_resource_types(self):
            return ("OS::Keystone::Project",)

        def get_dependent_resources(self, context, parent):
            n = int(parent.name.split("-")[1]) - 1
            return [Resource("OS::Nova::Server", "%s-%d" % (parent.id, i), "s%d" % i)
                    for i in range(n)]

        def list_resources(self, context, parameters=None):
            return []

        def show_resource(self, context, resource_id, parameters=None):
            return None
''')


def install_plugin(site: Path) -> None:
    (site / "karbor_bench_fanout.py").write_text(PLUGIN)
    info = site / "karbor_bench_fanout-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: karbor-bench-fanout\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[karbor.protectables]\nbench-fanout = karbor_bench_fanout:FanOut\n")


def protect(url: str, project: str, n: int) -> float:
    headers = {"X-Auth-Token": f"bench:{project}"}
    base = f"{url}/v1/{project}"
    plan = requests.post(f"{base}/plans", headers=headers, timeout=60, json={"plan": {
        "name": f"fanout {n}", "provider_id": NOOP,
        "resources": [{"id": project, "type": "OS::Keystone::Project",
                       "name": f"fanout-{n}"}]}}).json()["plan"]["id"]
    start = time.perf_counter()
    cp = requests.post(f"{base}/providers/{NOOP}/checkpoints", headers=headers, timeout=60,
                       json={"checkpoint": {"plan_id": plan}}).json()["checkpoint"]["id"]
    while True:
        status = requests.get(f"{base}/providers/{NOOP}/checkpoints/{cp}", headers=headers,
                              timeout=60).json()["checkpoint"]["status"]
        if status in ("available", "error"):
            break
        time.sleep(0.005 if n < 1000 else 0.05)
    elapsed = time.perf_counter() - start
    if status != "available":
        raise SystemExit(f"protect of {n} resources ended {status}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        install_plugin(site)
        os.environ["PYTHONPATH"] = f"{site}:{Path(__file__).resolve().parents[1]}"
        with karbor_server({"DEFAULT": {"operation_poll_interval": 0.01}}) as srv:
            print(f"karbor-server at {srv.url}; {os.cpu_count()} CPUs; No-Op provider, "
                  "file-system bank")
            print(f"{'resources':>9}  {'wall s':>8}  {'ms/resource':>11}  original      ratio")
            for n in SIZES:
                elapsed = protect(srv.url, uuid.uuid4().hex, n)
                ref = ORIGINAL.get(n)
                ref_txt = f"{ref:8.3f} s  x{ref / elapsed:6.1f} faster" if ref else ""
                print(f"{n:>9}  {elapsed:8.3f}  {elapsed / n * 1000:11.3f}  {ref_txt}",
                      flush=True)


if __name__ == "__main__":
    main()
