"""karbor-operationengine: fires triggers and runs scheduled operations."""

from __future__ import annotations

import sys

from karbor.cmd import common


def main(argv: list[str] | None = None) -> int:
    common.setup(argv, "karbor-operationengine")
    from karbor.services.heartbeat import Heartbeat
    from karbor.services.operationengine.engine import OperationEngine

    beat = Heartbeat("karbor-operationengine")
    beat.start()
    engine = OperationEngine(service_id=beat.service_id)
    engine.start()
    common.wait_for_signal()
    engine.stop()
    beat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
