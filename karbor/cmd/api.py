"""karbor-api: the REST API alone (workers and the operation engine run elsewhere)."""

from __future__ import annotations

import sys

from karbor.cmd import common


@common.cli_errors
def main(argv: list[str] | None = None, prog: str = "karbor-api") -> int:
    common.setup(argv, prog)
    from karbor.cmd.api_server import APIServer
    from karbor.services.heartbeat import Heartbeat
    from karbor.services.protection import jobboard

    jobboard.check_config()  # the API posts the jobs: a malformed URL stops it here
    api = APIServer()
    beat = Heartbeat("karbor-api")
    beat.start()
    api.start()
    common.wait_for_signal()
    api.stop()
    beat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
