"""karbor-server: API, protection worker and operation engine in one process (embedded mode)."""

from __future__ import annotations

import logging
import sys

from karbor.cmd import common

LOG = logging.getLogger("karbor.server")


@common.cli_errors
def main(argv: list[str] | None = None) -> int:
    common.setup(argv, "karbor-server")
    from karbor.cmd.api_server import APIServer
    from karbor.services.heartbeat import Heartbeat
    from karbor.services.operationengine.engine import OperationEngine
    from karbor.services.protection import jobboard
    from karbor.services.protection.worker import ProtectionWorker

    jobboard.check_config()
    api = APIServer()  # first: a configuration error stops us before anything runs
    beats = [Heartbeat("karbor-api"), Heartbeat("karbor-protection"),
             Heartbeat("karbor-operationengine")]
    for beat in beats:
        beat.start()
    worker = ProtectionWorker()
    worker.start()
    engine = OperationEngine(service_id=beats[2].service_id)
    engine.start()
    api.start()
    print(f"karbor-server ready on {api.url} (state in {common.CONF.state_path})",
          file=sys.stderr, flush=True)
    signame = common.wait_for_signal()
    LOG.info("%s received, shutting down", signame)
    api.stop()
    engine.stop()
    worker.stop()
    for beat in beats:
        beat.stop()
    LOG.info("karbor-server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
