"""The session's Nova + Placement + Neutron + Glance (``compute.py``), on the session's
Keystone + Cinder (``openstack_cloud`` of ``conftest.py``).

Import ``compute_cloud`` into a test module to use it. It fails -- never skips -- when the
services cannot be installed or started and stops them at the end of the session; their
install and start times are in :data:`timings` (printed by the tests) and written to
``.state/compute-timings.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.integration.openstack.cloud import STATE, OpenStackCloud
from tests.integration.openstack.compute import ComputeCloud

timings: dict[str, float] = {}


@pytest.fixture(scope="session")
def compute_cloud(openstack_cloud: OpenStackCloud) -> Iterator[ComputeCloud]:
    compute = ComputeCloud(openstack_cloud)
    t0 = time.monotonic()
    try:
        compute.start()
    except Exception as exc:
        logs = compute.logs_summary()
        compute.stop()
        pytest.fail(f"cannot start Nova/Placement/Neutron/Glance: {exc}\n{logs}")
    timings.update(compute.timings, **{"compute install + start":
                                       round(time.monotonic() - t0, 1)})
    try:
        yield compute
    finally:
        t1 = time.monotonic()
        compute.stop()
        timings["compute stop"] = round(time.monotonic() - t1, 1)
        STATE.mkdir(exist_ok=True)
        (STATE / "compute-timings.json").write_text(json.dumps(timings, indent=1))
        left = [name for name, proc in compute.processes.items() if proc.poll() is None]
        assert not left, f"still running after stop: {left}"
