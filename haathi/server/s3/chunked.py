"""Decoding ``aws-chunked`` request bodies incrementally, in bounded memory.

The framing (``x-amz-content-sha256: STREAMING-...``)::

    <hex size>[;chunk-signature=<sig>]\\r\\n <data> \\r\\n   ... repeated ...
    0[;chunk-signature=<sig>]\\r\\n
    [<trailer name>:<value>\\r\\n ...]  [x-amz-trailer-signature:<sig>\\r\\n]
    \\r\\n

Signed bodies (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``) have each chunk's signature
checked through a :class:`~haathi.server.s3.sigv4.ChunkChain` when one is given (auth on).
"""

from __future__ import annotations

import hashlib

from haathi.server.s3.errors import s3_error
from haathi.server.s3.sigv4 import ChunkChain

MAX_LINE = 4096
MAX_TRAILERS = 16


def _bad(why: str) -> Exception:
    return s3_error("IncompleteBody", f"malformed aws-chunked body: {why}")


class ChunkedDecoder:
    """Feed raw body bytes in; get the payload bytes out; :meth:`finish` at the end."""

    def __init__(self, *, chain: ChunkChain | None = None, signed: bool = False) -> None:
        self._chain = chain
        self._signed = signed
        self._buf = bytearray()
        self._state = "size"  # size | data | crlf | trailer | done
        self._left = 0
        self._claimed = ""
        self._hash = hashlib.sha256()
        self.trailers: dict[str, str] = {}
        self._trailer_text = ""

    def _line(self) -> str | None:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise _bad("a line is too long")
            return None
        line = bytes(self._buf[:end]).rstrip(b"\r")
        del self._buf[: end + 1]
        try:
            return line.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _bad("a size or trailer line is not ASCII") from exc

    def _size_line(self, line: str) -> None:
        size, _, ext = line.partition(";")
        try:
            self._left = int(size.strip(), 16)
        except ValueError as exc:
            raise _bad(f"chunk size {size[:20]!r} is not hexadecimal") from exc
        if self._left < 0:
            raise _bad("negative chunk size")
        key, _, value = ext.partition("=")
        self._claimed = value.strip() if key.strip() == "chunk-signature" else ""
        if self._signed and not self._claimed:
            raise _bad("a chunk of a signed body has no chunk-signature")
        self._hash = hashlib.sha256()
        if self._left == 0:
            self._chunk_done()
            self._state = "trailer"
        else:
            self._state = "data"

    def _chunk_done(self) -> None:
        if self._chain is not None:
            self._chain.check_chunk(self._hash.hexdigest(), self._claimed)

    def _trailer_line(self, line: str) -> None:
        if not line:
            if self._chain is not None and self.trailers:
                claimed = self.trailers.pop("x-amz-trailer-signature", "")
                if not claimed:
                    raise _bad("the trailer of a signed body has no x-amz-trailer-signature")
                self._chain.check_trailer(self._trailer_text, claimed)
            self.trailers.pop("x-amz-trailer-signature", None)
            self._state = "done"
            return
        name, sep, value = line.partition(":")
        if not sep or len(self.trailers) >= MAX_TRAILERS:
            raise _bad(f"bad trailer line {line[:40]!r}")
        name, value = name.strip().lower(), value.strip()
        if name != "x-amz-trailer-signature":
            self._trailer_text += f"{name}:{value}\n"
        self.trailers[name] = value

    def feed(self, data: bytes) -> list[bytes]:
        """The payload bytes ``data`` completes (possibly none)."""
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._state == "data":
                if not self._buf:
                    break
                piece = bytes(self._buf[: self._left])
                del self._buf[: len(piece)]
                self._left -= len(piece)
                self._hash.update(piece)
                out.append(piece)
                if self._left == 0:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(self._buf) < 2:
                    break
                if self._buf[:2] != b"\r\n":
                    raise _bad("a chunk is longer than its size")
                del self._buf[:2]
                self._chunk_done()
                self._state = "size"
            elif self._state in ("size", "trailer"):
                line = self._line()
                if line is None:
                    break
                self._size_line(line) if self._state == "size" else self._trailer_line(line)
            else:  # done
                if self._buf.strip():
                    raise _bad("bytes after the final chunk")
                self._buf.clear()
                break
        return out

    def finish(self) -> dict[str, str]:
        """Check the body ended after its final chunk; its trailers (e.g. checksums)."""
        if self._state == "trailer" and not self._buf:
            self._trailer_line("")  # a final empty line some clients leave out
        if self._state != "done":
            raise _bad("the body ended before its final chunk")
        return self.trailers
