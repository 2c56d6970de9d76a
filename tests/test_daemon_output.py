"""What a spout's or service's program prints, on its way to ``haathi logs``
(:mod:`haathi.pps.daemon_output`, :func:`haathi.pps.daemon_records.append_logs`): lines put
together from any cut of the output, secrets masked even when a chunk cuts one in two, long
lines cut, memory bounded; each pipeline keeps its newest lines, written only by the worker
that holds the daemon. (End to end, through a worker and a server: test_spouts_services.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import haathi
from haathi.models.secret import redact
from haathi.pfs.context import now
from haathi.pps import daemon_records, records
from haathi.pps.daemon_output import LINE_MAX, PENDING_MAX, DaemonOutput
from tests.internals import inner

SECRET = b"s3cr3t-value-123"


def texts(output: DaemonOutput) -> list[tuple[int, str]]:
    return [(run, text) for _, run, text in output.take()]


def test_lines_are_put_together_from_any_cut_and_masked_whole() -> None:
    out = DaemonOutput()
    out.start_run(1, lambda b: redact(b, [SECRET]))
    for chunk in (b"first li", b"ne\nkey=s3cr3t-va", b"lue-123\r\nno end"):
        out.feed(chunk)
    assert texts(out) == [(1, "first line"), (1, "key=***")]  # (the last waits for its end)
    out.end_run("exited with code 3")
    out.start_run(2, lambda b: b)
    out.feed(b"\xff invalid utf-8\n")
    assert texts(out) == [(1, "no end"), (1, "haathi: exited with code 3"),
                          (2, "\ufffd invalid utf-8")]  # fmt: skip
    assert out.take() == []


def test_a_long_line_is_cut_and_a_flood_is_dropped_with_a_note() -> None:
    out = DaemonOutput()
    out.start_run(1, lambda b: b)
    out.feed(b"x" * (5 * LINE_MAX))  # no newline: a line of its own past 4 * LINE_MAX bytes
    assert texts(out) == [(1, "x" * LINE_MAX + f" [cut: {5 * LINE_MAX} characters]")]
    out.feed(b"".join(b"line %d\n" % i for i in range(PENDING_MAX + 5)))
    taken = texts(out)
    assert taken[0] == (1, "haathi: 5 lines printed too fast were dropped")
    assert taken[1:] == [(1, f"line {i}") for i in range(5, PENDING_MAX + 5)]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[haathi.Client, int]]:
    """A store with spout ``s`` (its daemon's row held by runner ``w1``)."""
    with haathi.connect(str(tmp_path / "store"), run_jobs=False) as c:
        c.create_pipeline({"pipeline": {"name": "s"}, "spout": {}, "transform": {"cmd": ["true"]}})
        db = inner(c).pfs.db
        with db.write() as conn:
            pid = records.pipeline_row(conn, "s").id
            t = now()
            assert daemon_records.claim(conn, pid, "w1", t, t + timedelta(minutes=1))
        yield c, pid


def test_a_daemon_keeps_its_newest_lines_and_only_its_holder_writes(
    daemon: tuple[haathi.Client, int],
) -> None:
    c, pid = daemon
    db = inner(c).pfs.db
    lines = [(now(), 1, f"line {i}") for i in range(1, 8)]
    with db.write() as conn:
        assert daemon_records.append_logs(conn, pid, "w1", lines[:4], keep=5)
        assert daemon_records.append_logs(conn, pid, "w1", lines[4:], keep=5)
        assert not daemon_records.append_logs(conn, pid, "w2", lines, keep=5)  # not its holder
    kept = c.daemon_logs("s", limit=0)
    assert [(x.seq, x.text) for x in kept] == [(i, f"line {i}") for i in range(3, 8)]
    assert c.daemon_logs("s", since=6) == kept[-1:]
    c.delete_pipeline("s")
    with db.read() as conn:  # (deleted with its pipeline)
        assert daemon_records.read_logs(conn, pid, None, 100) == []
