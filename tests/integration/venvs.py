"""Virtualenvs for the OpenStack services the integration tests run, installed on first use.

Each lives under ``.state/`` and is rebuilt when its requirements or pins change; a
file lock keeps parallel test processes from installing the same one twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".state"
INSTALL_TIMEOUT = 900


def _fingerprint(requirements: Sequence[str], constraints: Path | None) -> str:
    text = "\n".join(requirements)
    if constraints is not None:
        text += "\n" + constraints.read_text()
    return hashlib.sha256(text.encode()).hexdigest()


def _ready(venv: Path, fingerprint: str, executables: Sequence[str]) -> bool:
    marker = venv / ".installed"
    return (marker.is_file() and marker.read_text().strip() == fingerprint
            and all((venv / "bin" / exe).is_file() for exe in executables))


def ensure_venv(venv: Path, requirements: Sequence[str], *, constraints: Path | None = None,
                executables: Sequence[str] = (), check_import: str | None = None,
                what: str = "the service", error: type[Exception] = RuntimeError) -> Path:
    """``venv`` with ``requirements`` installed (pinned by ``constraints``), or ``error``."""
    fingerprint = _fingerprint(requirements, constraints)
    if _ready(venv, fingerprint, executables):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(venv, fingerprint, executables):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        python = shutil.which("python3") or sys.executable
        pins = ["-c", str(constraints)] if constraints is not None else []
        steps = [[python, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", *requirements, *pins]]
        if check_import:
            steps.append([str(venv / "bin" / "python"), "-c", f"import {check_import}"])
        for step in steps:
            try:
                proc = subprocess.run(step, capture_output=True, text=True,
                                      timeout=INSTALL_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise error(f"cannot install {what} ({' '.join(step)}): {exc}") from exc
            if proc.returncode != 0:
                raise error(f"cannot install {what} ({' '.join(step)}):\n"
                            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (venv / ".installed").write_text(fingerprint + "\n")
    return venv
