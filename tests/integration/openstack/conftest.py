"""The OpenStack tier: a real Keystone + Cinder started once per test session.

``openstack_cloud`` installs what is missing (Debian packages, Keystone and Cinder venvs
under ``.state/``), starts everything on free 127.0.0.1 ports (see ``cloud.py``), fails --
never skips -- when it cannot, and stops everything at the end of the session.  The
install and start times are printed at the end of the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.integration.openstack.cloud import REPO, OpenStackCloud

_timings: dict[str, float] = {}


@pytest.fixture(scope="session")
def openstack_cloud(tmp_path_factory) -> Iterator[OpenStackCloud]:
    cloud = OpenStackCloud(tmp_path_factory.mktemp("openstack"))
    t0 = time.monotonic()
    try:
        cloud.start()
    except Exception as exc:
        logs = "\n".join(f"--- {name}:\n{cloud.log(name)[-1500:]}" for name in cloud.processes)
        cloud.stop()
        pytest.fail(f"cannot start the OpenStack cloud (Keystone + Cinder): {exc}\n{logs}")
    _timings.update(cloud.timings, **{"install + start": round(time.monotonic() - t0, 1)})
    try:
        yield cloud
    finally:
        t1 = time.monotonic()
        cloud.stop()
        _timings["stop"] = round(time.monotonic() - t1, 1)
        leftovers = cloud._our_strays()
        (REPO / ".state").mkdir(exist_ok=True)
        (REPO / ".state" / "openstack-timings.json").write_text(json.dumps(_timings, indent=1))
        assert not leftovers, f"processes left running after stop: {leftovers}"


def pytest_terminal_summary(terminalreporter):
    if _timings:
        terminalreporter.write_sep("-", "OpenStack tier (Keystone + Cinder) timings, seconds")
        terminalreporter.write_line(", ".join(f"{k}: {v}" for k, v in _timings.items()))
