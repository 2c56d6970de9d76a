"""Files' contents over HTTP from a real server: read over ``http.client`` connections of
their own (:mod:`haathi.client.download`: one copy from the socket where httpx made four),
kept alive in a small pool, byte for byte what embedded reads give."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import haathi
from haathi.client import Client
from haathi.client.download import direct
from haathi.errors import NotFound, StorageError
from haathi.server.serve import Server


@pytest.fixture
def backend() -> str:
    return "local"  # about the client's connections: one backend pair


@pytest.fixture
def remote(server: Server) -> Iterator[Client]:
    with haathi.connect(server.url) as c:
        yield c


def test_a_file_reads_back_whole_and_in_ranges(remote: Client) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12345)  # several chunks and pieces
    remote.create_repo("r")
    remote.put_file("r@master:/big", data)
    assert remote.get_file("r@master:/big") == data
    assert (
        remote.get_file("r@master:/big", offset=3_000_000, length=1_500_000)
        == (data[3_000_000:4_500_000])
    )
    with remote.open_file("r@master:/big", offset=100) as fh:
        assert fh.read(10) == data[100:110]
        assert fh.read() == data[110:]
    with pytest.raises(NotFound, match="/missing"):
        remote.get_file("r@master:/missing")
    assert remote.get_file("r@master:/big", length=7) == data[:7]  # the pool still works


def _time_wait(port: int) -> int:
    """Closed connections to ``port`` whose close this host began (TIME_WAIT)."""
    return sum(
        1
        for c in psutil.net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_TIME_WAIT
    )


def test_reads_reuse_kept_alive_connections(remote: Client, server: Server) -> None:
    """100 reads of a small file go over one kept-alive connection, not one each (which
    would leave 100 sockets in TIME_WAIT and run out of ports under a loop of reads)."""
    remote.create_repo("r")
    remote.put_file("r@master:/small", b"x" * 100)
    before = _time_wait(server.port)
    for _ in range(100):
        assert remote.get_file("r@master:/small") == b"x" * 100
    assert _time_wait(server.port) - before < 5


def test_a_read_after_the_server_closed_an_idle_connection_succeeds(
    remote: Client, server: Server
) -> None:
    remote.create_repo("r")
    remote.put_file("r@master:/a", b"a")
    assert remote.get_file("r@master:/a") == b"a"  # its connection is kept for the next read
    closed = threading.Event()
    for conn in list(server.uvicorn.server_state.connections):  # as its keep-alive ends

        def close(conn: object = conn) -> None:
            conn.transport.close()  # type: ignore[attr-defined]
            closed.set()

        conn.loop.call_soon_threadsafe(close)  # type: ignore[attr-defined]
    assert closed.wait(10)
    assert remote.get_file("r@master:/a") == b"a"


def test_a_body_cut_short_is_an_error(tmp_path: Path) -> None:
    """A server that sends 50 of the 100 bytes it announced: the read fails, naming how
    many came."""
    info = {"repo": "r", "commit": "c" * 32, "path": "/f", "type": "file", "size_bytes": 100}
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Haathi-File-Info: "
                + json.dumps(info).encode()
                + b"\r\n\r\n"
                + b"y" * 50
            )

    threading.Thread(target=serve_once, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with haathi.connect(url) as c, pytest.raises(StorageError, match="stopped after 50 of 100"):
        c.get_file("r@master:/f")
    listener.close()


def test_a_proxy_or_tls_leaves_reads_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert direct("http://127.0.0.1:8650")
    assert not direct("https://example.com")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert not direct("http://127.0.0.1:8650")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert direct("http://127.0.0.1:8650")
