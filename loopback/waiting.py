"""Polling for what a test waits on: a process to start or end, a page to show something,
a commit to arrive. Timeouts are generous (the machine is shared); they only bound a failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], what: str = "", *, timeout: float = 60.0,
             every: float = 0.05) -> Any:  # fmt: skip
    """``check()``'s value once it is truthy (polled every ``every`` seconds), else
    AssertionError naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}: {found!r}"
        time.sleep(every)
