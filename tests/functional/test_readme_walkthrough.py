"""The README's Local Provider walk-through, run as it stands with the original client.

The block after ``<!-- walk-through: local -->`` is taken from README.md and run by bash
(``set -euo pipefail``) against a real karbor-server and a real PostgreSQL; only what the
README's set-up block provides is given here (the ``karbor`` function, ``DEMO`` and the
libpq environment). If the README drifts from what the service does, this fails.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.functional._server import karbor_server

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- walk-through: local -->"
PROJECT = "8b2cc0a3f27e4b5bbd2c1c3b6f0c0a11"


def _block() -> str:
    text = README.read_text()
    assert MARKER in text, "the README lost its Local Provider walk-through"
    match = re.search(r"```sh\n(.*?)\n```", text[text.index(MARKER):], re.S)
    assert match, "no shell block after the walk-through marker"
    return match.group(1)


def test_local_walkthrough_as_written(tmp_path, postgresql_server, karborclient):
    demo = tmp_path / "karbor-demo"
    demo.mkdir()
    server_url = f"postgresql://postgres@127.0.0.1:{postgresql_server.port}"
    with karbor_server({"local_directory": {"roots": demo},
                        "postgresql": {"servers": f"main:{server_url}"}}) as srv:
        prelude = (
            "set -euo pipefail\n"
            f"karbor() {{ {karborclient} --os-no-client-auth "
            f"--karbor-url {srv.url}/v1/{PROJECT} --os-auth-token demo:{PROJECT} \"$@\"; }}\n")
        env = dict(os.environ, DEMO=str(demo), PGHOST="127.0.0.1",
                   PGPORT=str(postgresql_server.port), PGUSER="postgres")
        env.pop("PGDATABASE", None)
        proc = subprocess.run(["bash", "-c", prelude + _block()], env=env,
                              capture_output=True, text=True, timeout=600)
        out = proc.stdout
        assert proc.returncode == 0, (out[-4000:], proc.stderr[-4000:], srv.log()[-3000:])

    # What the comments in the README promise, in order.
    statuses = [line.strip() for line in out.splitlines()
                if line.strip() in ("available", "success", "error", "fail")]
    assert statuses == ["available", "success", "success"], out[-4000:]
    assert f"{demo}/photos/README.txt: OK" in out
    assert f"{demo}/photos/beach.raw: OK" in out
    items = re.findall(r"^\s*(book|pen)\s*$", out, re.M)
    assert items == ["book", "pen"], out[-2000:]
    assert (demo / "photos" / "README.txt").read_text() == "summer 2026\n"
