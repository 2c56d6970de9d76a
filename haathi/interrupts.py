"""Ctrl-C and the helper processes a command or a server starts.

A terminal's Ctrl-C signals its whole foreground process group, helpers included. A helper
that is still importing when it arrives would die with a ``KeyboardInterrupt`` traceback, so a
process starts its helpers with SIGINT blocked (:func:`held`: a signal mask survives ``fork``
and ``exec``), and each helper ignores SIGINT, then unblocks it (:func:`ignore`), before it
does anything else: the starting process alone handles Ctrl-C and stops its helpers its own
way.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C back from this thread while it starts processes (they start with it
    blocked). A Ctrl-C pressed meanwhile reaches this process when the block ends.

    multiprocessing's resource tracker is started first: the first process that multiprocessing
    starts starts it, and it unblocks SIGINT once it has (its own block, around its own start),
    so every process started after it in this block would be started with SIGINT open."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def ignore() -> None:
    """In a helper started under :func:`held`: ignore Ctrl-C from now on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
