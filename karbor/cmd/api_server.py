"""Serving the WSGI app over HTTP in-process (waitress), stoppable on a signal."""

from __future__ import annotations

import logging
import threading

from waitress import wasyncore
from waitress.server import create_server

from karbor.api.app import create_app
from karbor.common.config import CONF

LOG = logging.getLogger(__name__)


class APIServer:
    def __init__(self, host: str | None = None, port: int | None = None):
        self.app = create_app()
        self.server = create_server(
            self.app, host=host or CONF.osapi_karbor_listen,
            port=port if port is not None else CONF.osapi_karbor_listen_port,
            threads=CONF.osapi_karbor_workers, ident="karbor", clear_untrusted_proxy_headers=True,
            channel_timeout=120)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.run, name="karbor-api", daemon=True)
        self._thread.start()
        LOG.info("Karbor API listening on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, let requests in progress finish, then close every connection."""
        try:
            self.server.accepting = False
            self.server.task_dispatcher.shutdown(timeout=10)
            # Closing the whole socket map (listener, trigger, keep-alive channels)
            # empties it, which is what ends waitress's loop.
            wasyncore.close_all(self.server._map)
        except Exception:
            LOG.exception("error while stopping the API server")
        if self._thread:
            self._thread.join(5)
