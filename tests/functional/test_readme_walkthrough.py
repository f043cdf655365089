"""README.md, run as a new user would: every ``sh`` block, in order, from a fresh copy.

A walk-through that only works against a server the test configured itself proves nothing
about what a user types, so nothing here is configured beyond what the README documents:
the tracked files of the checkout are copied into a temporary directory (``run-server.sh``
creates its own ``.venv`` there, as on a fresh clone), and the blocks run there under
``bash -euo pipefail`` with only the variables the README names (``KARBOR_PORT``, ``KC``,
``PGPORT``, ``PGDATA``, ``DEMO``) pointing at private ports and paths, so that the test
neither needs nor disturbs 8799, 5432, /tmp/kc or /srv.

What a person does by hand is done the way the README says it:

* ``./run-server.sh ...`` runs in a terminal of its own: here in the background, in its own
  session, and the next command waits until it says it is ready;
* "Ctrl-C" in the prose before a block is SIGINT to that server's process group, and the
  server must then exit cleanly;
* ``./run-tests.sh`` is not run (it would run this very test);
* a block after a ``<!-- not run`` marker (the multi-node commands, which need the nodes of
  their ``karbor.conf``) is skipped.

The README's comments are its promises (``# available``, ``# success``, ``sha256sum -c``
OK, the psql rows): they are asserted on the output. Every server started is killed at the
end, also on failure, and so is the PostgreSQL cluster the README makes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.functional._server import free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SCRIPT_TIMEOUT = 1200  # the first start installs .venv; every README wait is bounded too

# The test's stand-ins for what a person does outside the shell the blocks run in.
PRELUDE = r"""
set -euo pipefail
_SERVER_PID=
_server() {   # ./run-server.sh in a terminal of its own
  local ready_before
  touch "$_SERVER_LOG"
  ready_before=$(grep -c 'karbor-server ready on' "$_SERVER_LOG" || true)
  setsid bash -c 'echo $$ >> "$0"; exec ./run-server.sh "$@"' "$_SERVER_PIDS" "$@" \
    >> "$_SERVER_LOG" 2>&1 < /dev/null &
  _SERVER_PID=$!
  for i in $(seq 1200); do
    if [ "$(grep -c 'karbor-server ready on' "$_SERVER_LOG" || true)" -gt "$ready_before" ]; then
      break
    fi
    if ! kill -0 "$_SERVER_PID" 2>/dev/null; then
      echo "_server: ./run-server.sh $* exited before it was ready" >&2; return 1
    fi
    if [ "$i" -eq 1200 ]; then
      echo "_server: ./run-server.sh $* not ready after 10 minutes" >&2; return 1
    fi
    sleep 0.5
  done
  if [ ! -e "$_BUSY_PORT_ERR" ]; then   # what the README warns of: a second server, same port
    if ./run-server.sh "$@" > /dev/null 2> "$_BUSY_PORT_ERR"; then
      echo "_server: a second server on a busy port did not fail" >&2; return 1
    fi
  fi
}
_ctrl_c() {   # Ctrl-C in the server's terminal
  [ -n "$_SERVER_PID" ] || { echo "_ctrl_c: no server runs" >&2; return 1; }
  kill -INT -- "-$_SERVER_PID"
  local rc=0
  wait "$_SERVER_PID" || rc=$?
  _SERVER_PID=
  [ "$rc" -eq 0 ] || { echo "_ctrl_c: karbor-server exited with $rc" >&2; return 1; }
}
"""

SKIP_MARKER = "<!-- not run"


def _script(readme: str) -> str:
    """The README's ``sh`` blocks as one bash script, with the stand-ins of PRELUDE."""
    parts = [PRELUDE]
    position = 0
    for match in re.finditer(r"^```sh\n(.*?)^```$", readme, re.S | re.M):
        prose = readme[position:match.start()]
        position = match.end()
        last_paragraph = prose.strip().split("\n\n")[-1]
        if SKIP_MARKER in last_paragraph:
            continue
        if "Ctrl-C" in last_paragraph and parts[-1] != PRELUDE:
            parts.append("_ctrl_c")
        for line in match.group(1).splitlines():
            if line.startswith("./run-tests.sh"):
                continue
            if line.startswith("./run-server.sh"):
                line = "_server" + line[len("./run-server.sh"):]
            parts.append(line)
    return "\n".join(parts) + "\n"


def _copy_checkout(dest: Path) -> None:
    """The tracked files as they are in the working tree: what a clone of the next commit
    holds (so a file the README needs but git does not track fails here)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if not src.exists():  # deleted in the working tree, not yet in git
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def _environment(base: Path) -> dict[str, str]:
    """The user's environment minus this test run's venv and libpq/Karbor settings, plus the
    README's own variables."""
    venv_bin = str(REPO / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "KARBOR", "OS_", "PYTEST", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and p != venv_bin)
    env.update(KARBOR_PORT=str(free_port()), PGPORT=str(free_port()),
               PGDATA=str(base / "pg"), DEMO=str(base / "demo"), KC=str(base / "kc"),
               _SERVER_LOG=str(base / "server.log"), _SERVER_PIDS=str(base / "server.pids"),
               _BUSY_PORT_ERR=str(base / "busy-port.err"))
    return env


def _cleanup(base: Path) -> None:
    pids = base / "server.pids"
    if pids.exists():
        for pgid in filter(None, pids.read_text().split()):
            try:
                os.killpg(int(pgid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    pgdata = base / "pg"
    if (pgdata / "postmaster.pid").exists():
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        pg_ctl = str(bindir[-1]) if bindir else "pg_ctl"
        cmd = [pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def test_script_follows_the_readme():
    script = _script(README.read_text())
    assert re.search(r"^_server +#", script, re.M), "the README lost ./run-server.sh"
    assert "\n_server --config-file local.conf" in script
    assert len(re.findall(r"^_ctrl_c$", script, re.M)) == 2, \
        "the README no longer says how to stop the server"
    assert "run-tests.sh" not in script
    assert "karbor-manage --config-file karbor.conf db sync" not in script


def test_readme_runs_as_written():
    if os.geteuid() != 0:
        pytest.fail("the README's PostgreSQL set-up is written for root (runuser, install -o)")
    # Not under pytest's 0700 tmp_path: the postgres user must reach PGDATA.
    base = Path(tempfile.mkdtemp(prefix="karbor-readme-"))
    base.chmod(0o755)
    try:
        checkout = base / "checkout"
        _copy_checkout(checkout)
        env = _environment(base)
        proc = subprocess.Popen(["bash", "-c", _script(README.read_text())], cwd=checkout,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        log = (base / "server.log").read_text(errors="replace") \
            if (base / "server.log").exists() else ""
        assert proc.returncode == 0, (out[-4000:], err[-4000:], log[-4000:])

        # The first start says it installs (a fresh clone has no .venv).
        assert "installing Karbor into ./.venv" in log
        # A second server on the same port: one line, no traceback.
        busy = (base / "busy-port.err").read_text().strip().splitlines()
        assert len(busy) == 1 and "cannot listen on 127.0.0.1:" in busy[0], busy
        assert "Address already in use" in busy[0]
        assert "Traceback" not in log

        # What the comments promise, in order.
        assert "No-Op Provider" in out and "OS::Keystone::Project" in out
        assert re.search(r"^\| status +\| protecting +\|$", out, re.M), out[-4000:]
        assert '"checkpoint_copy_id"' in out
        assert len(re.findall(r"\| karbor-(api|protection|operationengine) .*\| up +\|",
                              out)) == 3, out[-4000:]
        statuses = [line.strip() for line in out.splitlines()
                    if line.strip() in ("available", "finished", "success", "error", "fail")]
        assert statuses == ["available",                      # No-Op checkpoint
                            "available", "finished",          # copy: source, then the copy
                            "available", "success", "success"], out[-4000:]
        demo = env["DEMO"]
        assert f"{demo}/photos/README.txt: OK" in out
        assert f"{demo}/photos/beach.raw: OK" in out
        items = re.findall(r"^\s*(book|pen)\s*$", out, re.M)
        assert items == ["book", "pen"], out[-2000:]
        # The clean-up block ran: the cluster is stopped, the demo data gone.
        assert not (base / "pg").exists() and not Path(demo).exists()
    finally:
        _cleanup(base)
