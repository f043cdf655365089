"""karbor-wsgi: the API as a WSGI application for uWSGI, gunicorn or mod_wsgi.

``karbor.cmd.wsgi:application`` is the callable; configuration comes from the
``KARBOR_CONFIG_FILE`` environment variable (default: no file, embedded defaults).
Run as a script it serves the same app with waitress, for a quick check.
"""

from __future__ import annotations

import os
import sys

_application = None


def _build():
    from karbor.api.app import create_app
    from karbor.cmd import common

    files = [f for f in os.environ.get("KARBOR_CONFIG_FILE", "").split(",") if f]
    argv = []
    for f in files:
        argv += ["--config-file", f]
    common.setup(argv, "karbor-wsgi")
    return create_app()


def application(environ, start_response):
    global _application
    if _application is None:
        _application = _build()
    return _application(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    from karbor.cmd import api

    return api.main(argv, prog="karbor-wsgi")


if __name__ == "__main__":
    sys.exit(main())
