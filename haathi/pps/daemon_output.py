"""What a spout's or service's program prints, line by line, on its way to ``daemon_logs``.

The program's thread feeds each chunk of output as it comes (:meth:`DaemonOutput.feed`, the
``sink`` of :meth:`haathi.pps.sandbox.Sandbox.run`); the supervisor's thread takes the
complete lines about twice a second and records them (:meth:`DaemonOutput.take`). Each line
has its secrets masked (split into lines first, so a value is never cut in two), is cut to
:data:`LINE_MAX` characters, and keeps when it was printed and by which start of the program.
Memory is bounded: at most :data:`PENDING_MAX` lines wait between two takes; a program that
prints faster loses its older lines, and the log says how many.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime

from haathi.pfs.context import now

LINE_MAX = 4096  # characters of a line kept (the rest is cut, and says so)
PENDING_MAX = 1000  # lines kept between two takes (about 2,000 a second at most)
HAATHI = "haathi: "  # how the worker's own lines (why the program stopped) start

Line = tuple[datetime, int, str]  # (when, which run, text)


class DaemonOutput:
    """The lines of one daemon's program, waiting to be recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: deque[Line] = deque(maxlen=PENDING_MAX)
        self._partial = bytearray()
        self._dropped = 0
        self._run = 0
        self._redact: Callable[[bytes], bytes] = bytes

    def start_run(self, run: int, redact: Callable[[bytes], bytes]) -> None:
        """The program starts (its ``run``-th start), its output masked by ``redact``."""
        with self._lock:
            self._end_partial()
            self._run, self._redact = run, redact

    def feed(self, chunk: bytes) -> None:
        """Some output of the program (any cut: lines are put together here)."""
        with self._lock:
            self._partial += chunk
            *done, rest = self._partial.split(b"\n")
            for line in done:
                self._add(line)
            self._partial = bytearray(rest)
            if len(self._partial) > 4 * LINE_MAX:  # a line with no end yet: cut it here
                self._end_partial()

    def end_run(self, why: str | None = None) -> None:
        """The program's run ended (``why``: a line of the worker's own)."""
        with self._lock:
            self._end_partial()
            if why is not None:
                self._lines.append((now(), self._run, HAATHI + why))

    def take(self) -> list[Line]:
        """The lines printed since the last take, oldest first."""
        with self._lock:
            taken = list(self._lines)
            self._lines.clear()
            if self._dropped:
                note = f"{HAATHI}{self._dropped} lines printed too fast were dropped"
                taken.insert(0, (taken[0][0] if taken else now(), self._run, note))
                self._dropped = 0
            return taken

    def _end_partial(self) -> None:
        if self._partial:
            self._add(bytes(self._partial))
            self._partial.clear()

    def _add(self, raw: bytes | bytearray) -> None:
        text = self._redact(bytes(raw)).decode(errors="replace").rstrip("\r")
        if len(text) > LINE_MAX:
            text = text[:LINE_MAX] + f" [cut: {len(text)} characters]"
        if len(self._lines) == PENDING_MAX:
            self._dropped += 1
        self._lines.append((now(), self._run, text))
