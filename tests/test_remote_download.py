"""Files' contents over HTTP from a real server: read over ``http.client`` connections of
their own (:mod:`haathi.client.download`: one copy from the socket where httpx made four),
kept alive in a small pool, byte for byte what embedded reads give. The server sends the
chunks a local store holds raw from their packs (``sendfile``), each verified first, and
reads a bounded way ahead of a client."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import haathi
from haathi.client import Client
from haathi.client.download import direct
from haathi.errors import Corrupt, NotFound, StorageError
from haathi.models.refspec import parse_file
from haathi.pfs import files
from haathi.server import streaming
from haathi.server.serve import Server
from haathi.storage.blobs import BlobLocation, StoredRange, pack_key
from tests.test_bad_input import flip_byte


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
    many came, read in pieces or straight into a reader's buffer."""
    info = {"repo": "r", "commit": "c" * 32, "path": "/f", "type": "file", "size_bytes": 100}
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_twice() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Haathi-File-Info: "
                    + json.dumps(info).encode()
                    + b"\r\n\r\n"
                    + b"y" * 50
                )

    threading.Thread(target=serve_twice, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with haathi.connect(url) as c:
        with pytest.raises(StorageError, match="stopped after 50 of 100"):
            c.get_file("r@master:/f")
        with (
            pytest.raises(StorageError, match="stopped after 50 of 100"),
            c.open_file("r@master:/f") as fh,
        ):
            fh.read()
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


def _mixed(mib: int) -> bytes:
    """``mib`` MiB: random ones (stored raw: sent from their packs) and, every third,
    compressible ones (stored compressed: sent as bytes)."""
    return b"".join(os.urandom(1 << 20) if i % 3 else b"%07d\n" % i * (1 << 17) for i in range(mib))


def _chunks(server: Server, target: str) -> list[tuple[int, BlobLocation]]:
    """(offset in the file, stored location) of each chunk of the file."""
    pfs = server.api.pfs
    _, entry = files.file_entry(pfs, parse_file(target))
    found, pos = [], 0
    for digest, n in entry.chunk_list():
        found.append((pos, pfs.blobs.locate([digest])[digest]))
        pos += n
    return found


def test_chunks_stored_raw_go_from_their_packs_to_the_socket(
    remote: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _mixed(12) + b"a short tail"
    remote.create_repo("r")
    remote.put_file("r@master:/f", data)
    sent: list[int] = []
    sendfile = os.sendfile

    def counted(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = sendfile(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", counted)
    assert remote.get_file("r@master:/f") == data
    assert len(data) // 3 < sum(sent) < len(data)  # the random MiBs, not the compressible ones
    for offset, length in [(1, 10), (1_000_000, 3_000_000), (5_500_000, 1), (len(data) - 5, None)]:
        end = None if length is None else offset + length
        assert remote.get_file("r@master:/f", offset=offset, length=length) == data[offset:end]


def test_a_chunk_damaged_in_place_is_never_sent(
    remote: Client, server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every chunk sent from its pack is verified first: the read stops before the damaged
    one (the bytes that came are the file's), the server's log names the blob, and a read of
    the file from after it still gets every byte."""
    data = os.urandom(6 * 1024 * 1024)
    remote.create_repo("r")
    remote.put_file("r@master:/f", data)
    chunks = _chunks(server, "r@master:/f")
    start, loc = chunks[len(chunks) // 2]
    flip_byte(server.api.runtime.objects, pack_key(loc.pack), loc.offset + 100, tmp_path)
    log = logging.getLogger("uvicorn.error")
    log.addHandler(caplog.handler)
    try:
        got = bytearray()
        with (
            pytest.raises(StorageError, match="from the server"),
            remote.open_file("r@master:/f") as fh,
        ):
            while block := fh.read(64 * 1024):
                got += block
    finally:
        log.removeHandler(caplog.handler)
    assert len(got) <= start and got == data[: len(got)]
    assert f"blob {loc.digest.hex()} in pack {loc.pack} is corrupt: hash mismatch" in caplog.text
    with pytest.raises(Corrupt, match=loc.digest.hex()):  # the first chunk: before any byte
        remote.get_file("r@master:/f", offset=start + 1)
    after = start + loc.raw_length
    assert remote.get_file("r@master:/f", offset=after) == data[after:]


def test_a_file_whose_pack_is_cut_short_fails_before_its_first_byte(
    remote: Client, server: Server, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    remote.create_repo("r")
    remote.put_file("r@master:/f", data)
    _, loc = _chunks(server, "r@master:/f")[-1]
    objects, key = server.api.runtime.objects, pack_key(loc.pack)
    (tmp_path / "short").write_bytes(objects.get_range(key, 0, loc.offset + 10))
    objects.put_file(key, tmp_path / "short")
    with pytest.raises(Corrupt, match=f"pack {loc.pack} is truncated"):
        remote.get_file("r@master:/f")


def _open_packs(store: Path) -> list[str]:
    """The pack files of ``store`` this process (test and server) has open (another test's
    server in this pytest process may still be closing its own)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith(f"{os.path.realpath(store)}/objects/packs/"):
            found.append(target)
    return found


def test_a_client_that_stops_reading_holds_little_and_stalls_nothing(
    remote: Client, server: Server, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server reads a bounded way ahead of a client that stops reading, then waits for
    it without a thread; other requests are served meanwhile; once the client has gone, the
    server stops reading within a bounded number of bytes and closes the files it had open
    for it."""
    size = 48 * 1024 * 1024
    remote.create_repo("r")
    remote.put_file("r@master:/big", _mixed(size >> 20))
    remote.put_file("r@master:/small", b"small")
    read: list[int] = []
    preadv, pread = os.preadv, os.pread

    def counted_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        read.append(preadv(fd, buffers, offset))
        return read[-1]

    def counted_pread(fd: int, n: int, offset: int) -> bytes:
        read.append(len(got := pread(fd, n, offset)))
        return got

    monkeypatch.setattr(os, "preadv", counted_preadv)
    monkeypatch.setattr(os, "pread", counted_pread)
    stopped = threading.Event()  # the response's reading has ended: its batches are closed
    close = streaming._Ahead.close

    def closed(ahead: streaming._Ahead[bytes | StoredRange]) -> None:
        close(ahead)
        stopped.set()

    monkeypatch.setattr(streaming._Ahead, "close", closed)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no autotuned window
    client.connect((server.host, server.port))
    client.sendall(b"GET /v1/repos/r/commits/master/files/big HTTP/1.1\r\nHost: x\r\n\r\n")
    came = 0
    while came < 1024 * 1024:
        came += len(client.recv(65536))
    time.sleep(1.0)  # the server reads ahead, sends what the socket takes, and waits
    assert sum(read) < size // 2
    assert remote.get_file("r@master:/small") == b"small"
    assert remote.inspect_file("r@master:/big").size_bytes == size
    before = sum(read)
    stopped.clear()
    client.close()
    assert stopped.wait(30), "the server went on reading for a client that had gone"
    assert sum(read) - before <= 2 * streaming.AHEAD_BYTES  # (what it read before it knew)
    objects = server.api.runtime.objects
    objects.close()  # the handles it keeps open for reads of its own
    deadline = time.monotonic() + 10
    while _open_packs(store) and time.monotonic() < deadline:
        gc.collect()  # (what a cancelled send's traceback kept, once it is garbage)
        time.sleep(0.05)
    assert _open_packs(store) == []
