"""Bank calls the store makes more robust: writes retried, flush wherever the bank has one.

The file-system bank removes a directory as soon as its last object is deleted, so a write
into that directory racing the delete can fail with ENOENT; a retry succeeds.
"""

from __future__ import annotations

import errno
import time

from karbor.common import exception

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}

ATTEMPTS = 4


def bank_name(section) -> str:
    """How errors name the bank: its directory, or else its plugin's class."""
    bank = getattr(section, "bank", section)
    plugin = getattr(bank, "plugin", bank)
    return str(getattr(plugin, "root", None) or type(plugin).__name__)


def put(section, key: str, value, attempts: int = ATTEMPTS) -> None:
    """Write, retrying what may pass; a full bank (``BankFull``) is not retried."""
    for attempt in range(attempts):
        try:
            section.update_object(key, value)
            return
        except exception.BankFull:
            raise  # waiting does not make room
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise exception.BankFull(bank=bank_name(section), key=key) from None
            if attempt + 1 >= attempts:
                raise
            time.sleep(0.02 * 2 ** attempt)
        except exception.BankError:
            if attempt + 1 >= attempts:
                raise
            time.sleep(0.02 * 2 ** attempt)


def flush(section) -> None:
    bank = getattr(section, "bank", section)
    fn = getattr(bank, "flush", None)
    if callable(fn):
        fn()
