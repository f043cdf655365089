"""karbor-protection: a protection worker (run several against one database)."""

from __future__ import annotations

import sys

from karbor.cmd import common


@common.cli_errors
def main(argv: list[str] | None = None) -> int:
    common.setup(argv, "karbor-protection")
    from karbor.services.heartbeat import Heartbeat
    from karbor.services.protection.worker import ProtectionWorker

    worker = ProtectionWorker()  # first: a malformed [coordination] backend_url stops us
    beat = Heartbeat("karbor-protection")
    beat.start()
    worker.start()
    common.wait_for_signal()
    worker.stop()
    beat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
