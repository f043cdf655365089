"""Bank calls the store makes more robust: writes retried, flush wherever the bank has one.

The file-system bank removes a directory as soon as its last object is deleted, so a write
into that directory racing the delete can fail with ENOENT; a retry succeeds.
"""

from __future__ import annotations

import time

from karbor.common import exception

ATTEMPTS = 4


def put(section, key: str, value, attempts: int = ATTEMPTS) -> None:
    for attempt in range(attempts):
        try:
            section.update_object(key, value)
            return
        except (OSError, exception.BankError):
            if attempt + 1 >= attempts:
                raise
            time.sleep(0.02 * 2 ** attempt)


def flush(section) -> None:
    bank = getattr(section, "bank", section)
    fn = getattr(bank, "flush", None)
    if callable(fn):
        fn()
