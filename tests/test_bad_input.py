"""Bad input: a clear one-line error, a non-zero exit, and nothing changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import haathi
from haathi.client import Client
from haathi.client.sources import bytes_op
from haathi.errors import Corrupt, FailedPrecondition, InvalidArgument, NotFound, StorageError
from haathi.storage.blobs import pack_key
from haathi.storage.objects import LocalObjectStore, ObjectStore
from haathi.storage.readahead import ReadAhead
from tests.conftest import Cli
from tests.internals import inner, read_threads


def state(client: Client) -> list[tuple[str, str, list[str]]]:
    """Everything visible: every commit of every repo with its files."""
    out = []
    for r in client.list_repo():
        for c in client.list_commit(r.name):
            out.append((r.name, c.id, [f.path for f in client.walk_file(f"{r.name}@{c.id}:/")]))
    return out


BAD_PATHS = [
    "/a/../b",
    "../x",
    "/x/..",
    "/nul\x00byte",
    "/tab\there",
    "/del\x7f",
    "/new\nline",
    "/star*",
    "/q?",
    "/br[ack]et",
    "/{a,b}",
]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.every_transport  # (a path is refused before any store is reached)
def test_bad_put_paths_write_nothing(client: Client, path: str) -> None:
    client.create_repo("r")
    client.put_file("r@master:/ok", b"1")
    before = state(client)
    with pytest.raises(InvalidArgument):
        client.put_file(f"r@master:{path}", b"2")
    assert state(client) == before


def test_one_bad_path_fails_the_whole_request(client: Client, tmp_path: Path) -> None:
    from haathi.client.sources import bytes_op
    from haathi.models.ops import PutOp

    client.create_repo("r")
    good = bytes_op(b"1", "/good")
    bad = PutOp("/a/../b", good.open)
    with pytest.raises(InvalidArgument):
        client.modify_file("r@master", [good, bad])
    assert client.list_commit("r") == []


@pytest.mark.every_shape
def test_unknown_repo_branch_commit_file(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    for target in [
        "ghost@master:/a",
        "r@nobranch:/a",
        "r@0123456789abcdef0123456789abcdef:/a",
        "r@master:/nofile",
    ]:
        with pytest.raises(NotFound):
            client.get_file(target)
    with pytest.raises(NotFound):
        client.put_file("ghost@master:/a", b"1")
    assert [r.name for r in client.list_repo()] == ["r"]


def test_source_vanishing_or_unreadable_writes_nothing(client: Client, tmp_path: Path) -> None:
    from haathi.client.sources import file_op

    client.create_repo("r")
    ok = tmp_path / "ok"
    ok.write_bytes(b"fine")
    gone = tmp_path / "gone"
    gone.write_bytes(b"soon gone")
    ops = [file_op(ok, "/ok"), file_op(gone, "/gone")]
    gone.unlink()
    with pytest.raises(InvalidArgument, match="cannot read"):
        client.modify_file("r@master", ops)
    assert client.list_commit("r") == []

    class Failing:
        def __init__(self) -> None:
            self.n = 0

        def read(self, size: int = -1) -> bytes:
            self.n += 1
            if self.n > 2:
                raise OSError(5, "Input/output error")
            return b"x" * 1024

    with pytest.raises(InvalidArgument, match="Input/output error"):
        client.put_file("r@master:/flaky", Failing())  # type: ignore[arg-type]
    assert client.list_commit("r") == []


def test_unreadable_source_writes_nothing(client: Client) -> None:
    client.create_repo("r")
    # /proc/self/mem opens but fails on read (EIO), even for root.
    with pytest.raises(InvalidArgument, match="cannot read /proc/self/mem"):
        client.put_file("r@master:/s", "/proc/self/mem")
    assert client.list_commit("r") == []


@pytest.mark.every_backend
def test_corrupt_blob_is_named_on_read_and_by_fsck(
    client: Client, tmp_path: Path, cli: Cli
) -> None:
    client.create_repo("r")
    data = os.urandom(200_000)
    client.put_file("r@master:/f", data)
    rt = inner(client).runtime
    entry_chunks = _chunks_of(client, "r@master:/f")
    loc = rt.pfs.blobs.locate([entry_chunks[0]])[entry_chunks[0]]
    flip_byte(rt.objects, pack_key(loc.pack), loc.offset + loc.length // 2, tmp_path)
    with pytest.raises(Corrupt, match=entry_chunks[0].hex()):
        client.get_file("r@master:/f")
    problems = client.fsck()
    assert any(p.kind == "corrupt_blob" and p.subject == entry_chunks[0].hex() for p in problems)
    res = cli.fails("get", "file", "r@master:/f")
    assert entry_chunks[0].hex() in res.err
    res = cli("fsck", ok=False)
    assert res.code != 0 and entry_chunks[0].hex() in res.err


def flip_byte(objects: ObjectStore, key: str, offset: int, tmp: Path) -> None:
    """Damage one stored object in place, as a failing disk or a buggy server would."""
    raw = bytearray(objects.get_range(key, 0, objects.size(key)))
    raw[offset] ^= 0xFF
    (tmp / "damaged").write_bytes(bytes(raw))
    objects.put_file(key, tmp / "damaged")
    if isinstance(objects, LocalObjectStore):
        objects.close()  # drop cached handles to the replaced file


def _chunks_of(client: Client, target: str) -> list[bytes]:
    from haathi.models.refspec import parse_file
    from haathi.pfs import files

    _, entry = files.file_entry(inner(client).pfs, parse_file(target))
    return [d for d, _ in entry.chunk_list()]


# The same through the CLI: one line on stderr, non-zero exit, no traceback.


def test_cli_errors_are_one_line(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/a", "-f", "-", input=b"data")
    before = cli("list", "commit", "r", "-o", "json").json()
    cid = before[0]["id"]
    cases = [
        ("create", "repo", "bad.name"),
        ("create", "repo", "r"),
        ("delete", "repo", "ghost"),
        ("get", "file", "r@master:/nope"),
        ("get", "file", "ghost@master:/a"),
        ("get", "file", "r@nobranch:/a"),
        ("inspect", "commit", "r@0123456789abcdef0123456789abcdef"),
        ("put", "file", "r@master:/x/../y", "-f", "-"),
        ("put", "file", f"r@{cid}:/b", "-f", "-"),
        ("finish", "commit", f"r@{cid}"),
        ("put", "file", "r@master:/z", "-f", str(tmp_path / "missing")),
        ("create", "branch", "r@0123456789abcdef0123456789abcdef"),
        ("list", "file", "r@master:/missing"),
    ]
    for args in cases:
        res = cli.fails(*args, input=b"zz")
        assert res.err.startswith("error:"), (args, res.err)
    assert cli("list", "commit", "r", "-o", "json").json() == before


def test_cli_reading_a_directory_as_a_file(cli: Cli) -> None:
    cli("create", "repo", "r")
    cli("put", "file", "r@master:/d/f", "-f", "-", input=b"1")
    res = cli.fails("get", "file", "r@master:/d")
    assert "directory" in res.err


def test_usage_errors_are_one_line_with_exit_code_2(cli: Cli) -> None:
    for args, says in [
        (("frobnicate",), "No such command 'frobnicate'"),
        (("list", "repo", "--bogus"), "No such option: --bogus"),
        (("put", "file"), "Missing argument 'target'"),  # (no -f: pachctl reads stdin)
    ]:
        res = cli.fails(*args)
        assert res.code == 2
        assert res.err.startswith("error:") and says in res.err, res.err


def test_finished_commit_write_error_type(client: Client) -> None:
    client.create_repo("r")
    cid = client.put_file("r@master:/a", b"1")
    with pytest.raises(FailedPrecondition):
        client.delete_file(f"r@{cid}:/a")
    assert client.get_file(f"r@{cid}:/a") == b"1"


# Reading damaged data: `get file` fails before it writes anything.


def replace_object(objects: ObjectStore, key: str, data: bytes, tmp: Path) -> None:
    (tmp / "replacement").write_bytes(data)
    objects.put_file(key, tmp / "replacement")


def three_mb_file(client: Client) -> tuple[bytes, str]:
    """``r@master:/big`` (about a dozen chunks, alone in its pack with its first tree) and
    ``/small`` in a later commit, whose tree is in another pack; (big's bytes, its pack)."""
    data = os.urandom(3_000_000)
    client.create_repo("r")
    client.put_file("r@master:/big", data)
    client.put_file("r@master:/small", b"small")
    digest = _chunks_of(client, "r@master:/big")[0]
    return data, inner(client).pfs.blobs.locate([digest])[digest].pack


@pytest.mark.every_backend
def test_get_file_of_a_truncated_pack_writes_nothing(store: Path, cli: Cli, tmp_path: Path) -> None:
    with haathi.connect(str(store)) as c:
        _, pack = three_mb_file(c)
        objects = inner(c).runtime.objects
        replace_object(objects, pack_key(pack), objects.get_range(pack_key(pack), 0, 2_000_000),
                       tmp_path)  # fmt: skip

    res = cli.fails("get", "file", "r@master:/big")
    assert res.code == 9 and res.raw == b""  # Corrupt, and not one byte on stdout
    assert f"pack {pack} is truncated (2000000 bytes" in res.err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = cli.fails("get", "file", "r@master:/big", "-o", str(out_dir / "big"))
    assert f"pack {pack} is truncated" in res.err
    assert list(out_dir.iterdir()) == []  # no file, no temp file
    assert cli("get", "file", "r@master:/small").raw == b"small"

    # a restore: a new file that cannot be read is removed; an existing one is kept as it was
    res = cli.fails("get", "file", "-r", "r@master:/", "-o", str(out_dir))
    assert res.code == 9 and pack in res.err and "truncated" in res.err
    assert list(out_dir.iterdir()) == []
    (out_dir / "big").write_bytes(b"mine")
    cli.fails("get", "file", "-r", "r@master:/", "-o", str(out_dir))
    assert [(p.name, p.read_bytes()) for p in out_dir.iterdir()] == [("big", b"mine")]


def test_a_restore_of_many_files_stops_at_a_damaged_one(
    store: Path, cli: Cli, tmp_path: Path
) -> None:
    """Files past the first 128 are written by a writer process: a restore meeting a damaged
    file fails naming its blob, having written every file before it and nothing of it."""
    files = {f"/f{i:03d}": os.urandom(3000) for i in range(300)}
    with haathi.connect(str(store)) as c:
        c.create_repo("r")
        c.modify_file("r@master", [bytes_op(data, path) for path, data in files.items()])
        chunk = _chunks_of(c, "r@master:/f200")[0]
        blobs = inner(c).pfs.blobs
        loc = blobs.locate([chunk])[chunk]
        flip_byte(inner(c).runtime.objects, pack_key(loc.pack), loc.offset + 10, tmp_path)

    out = tmp_path / "out"
    res = cli.fails("get", "file", "-r", "r@master:/", "-o", str(out))
    assert res.code == 9 and chunk.hex() in res.err and res.err.count("\n") == 1
    assert {f"/{p.name}": p.read_bytes() for p in out.iterdir()} == {
        path: data for path, data in files.items() if path < "/f200"
    }


def test_get_file_to_stdout_verifies_a_file_before_writing_it(
    store: Path, cli: Cli, tmp_path: Path
) -> None:
    with haathi.connect(str(store)) as c:
        _, pack = three_mb_file(c)
        last = _chunks_of(c, "r@master:/big")[-1]
        loc = inner(c).pfs.blobs.locate([last])[last]
        flip_byte(inner(c).runtime.objects, pack_key(pack), loc.offset + 7, tmp_path)

    res = cli.fails("get", "file", "r@master:/big")  # same size: found only by reading it
    assert res.code == 9 and res.raw == b""
    assert last.hex() in res.err and "hash mismatch" in res.err


@pytest.mark.every_backend
def test_reading_a_file_whose_pack_is_truncated_fails_before_the_first_byte(
    client: Client, tmp_path: Path
) -> None:
    data, pack = three_mb_file(client)
    objects = inner(client).runtime.objects
    replace_object(objects, pack_key(pack), objects.get_range(pack_key(pack), 0, 2_000_000),
                   tmp_path)  # fmt: skip
    with pytest.raises(Corrupt, match=f"pack {pack} is truncated"):
        client.open_file("r@master:/big")
    with pytest.raises(Corrupt, match=f"pack {pack} is truncated"):
        client.get_file("r@master:/big", offset=1_000_000)
    assert client.get_file("r@master:/big", length=1_000_000) == data[:1_000_000]


def test_names_ending_in_a_newline_are_refused(client: Client, cli: Cli) -> None:
    # a regex ending in `$` also matches before a final "\n": names are matched whole
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    client.put_file("r@master:/b", b"2")
    before = state(client)
    for name in ("bad\n", "bad\r\n", "bad\nx"):
        with pytest.raises(InvalidArgument, match="invalid repo name"):
            client.create_repo(name)
        with pytest.raises(InvalidArgument):
            client.create_branch(f"r@{name}")
        with pytest.raises(InvalidArgument):
            client.put_file(f"r@{name}:/c", b"3")  # a write to a new branch makes it
        with pytest.raises(InvalidArgument):
            client.start_commit(f"r@{name}")
    with pytest.raises(InvalidArgument):
        client.create_branch("r@" + "0" * 32 + "\n")  # a commit ID's shape, and a newline
    # "master^\n" read as "master^" (a `$` before the final newline): now a bad ref
    with pytest.raises(InvalidArgument, match="control characters"):
        client.inspect_commit("r@master^\n")
    spec = {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "r", "glob": "/*"}},
        "transform": {"cmd": ["true"]},
    }
    with pytest.raises(InvalidArgument, match=r"pipeline\.name"):
        client.create_pipeline(spec | {"pipeline": {"name": "p\n"}})
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.name"):
        client.create_pipeline(spec | {"input": {"pfs": {"repo": "r", "glob": "/*",
                                                         "name": "in\n"}}})  # fmt: skip
    assert state(client) == before
    assert [b.name for b in client.list_branch("r")] == ["master"]
    assert client.list_pipeline() == []
    assert cli.fails("create", "repo", "bad\n").code == InvalidArgument.exit_code


LONE = "\ud800"  # a lone surrogate: a str can hold it, UTF-8 (and so the store) cannot


@pytest.mark.every_shape
def test_text_that_is_not_unicode_is_invalid_and_stores_nothing(client: Client) -> None:
    # was an internal UnicodeEncodeError (a 500 over HTTP); every field says which it is
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    before = state(client)
    spec = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
            "transform": {"cmd": ["echo", LONE]}}  # fmt: skip
    for name, call in {
        "the description of repo q": lambda: client.create_repo("q", description=LONE),
        "the description of repo r": lambda: client.update_repo("r", f"x{LONE}"),
        "branch or commit": lambda: client.create_branch(f"r@b{LONE}"),
        "head": lambda: client.create_branch("r@b", head=f"master{LONE}"),
        "the commit message": lambda: client.start_commit("r@dev", description=LONE),
        "metadata key": lambda: client.edit_metadata("repo", "r", "add", {LONE: "v"}),
        "metadata value": lambda: client.edit_metadata("repo", "r", "add", {"k": LONE}),
        "path": lambda: client.put_file(f"r@master:/{LONE}", b"1"),
        "the commit message ": lambda: client.put_file("r@master:/b", b"1", description=LONE),
        "path ": lambda: client.copy_file("r@master:/a", f"r@master:/c{LONE}"),
        "path  ": lambda: client.get_file(f"r@master:/{LONE}"),
        "glob pattern": lambda: client.glob_file(f"r@master:/{LONE}*"),
        "the pipeline spec.transform.cmd[1]": lambda: client.create_pipeline(spec),
        "": lambda: client.inspect_pipeline(LONE),
        " ": lambda: client.list_job(LONE),
    }.items():
        with pytest.raises(InvalidArgument, match="not valid Unicode text") as exc:
            call()
        assert name.strip() in str(exc.value)
    assert state(client) == before
    assert client.inspect_repo("r").description == "" and client.inspect_repo("r").metadata == {}


def test_put_of_a_file_name_that_is_not_utf8_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    # os.listdir gives such a name as a lone surrogate ("bad\udcff")
    src = tmp_path / "src"
    src.mkdir()
    (src / "good").write_bytes(b"1")
    with open(os.path.join(os.fsencode(src), b"bad\xff"), "wb") as fh:
        fh.write(b"2")
    cli("create", "repo", "r")
    res = cli.fails("put", "file", "-r", "r@master:/d", "-f", str(src))
    assert res.code == InvalidArgument.exit_code and "not valid Unicode text" in res.err
    assert "\\udcff" in res.err
    assert cli("list", "commit", "r", "-o", "json").json() == []


@pytest.mark.every_shape
def test_reading_many_files_of_a_truncated_pack_fails_and_names_it(
    client: Client, tmp_path: Path
) -> None:
    """A restore (``read_files``) meets the damage where it is: the files before it come
    whole, then it fails (over HTTP, the stream stops and says so), never a short file."""
    _, pack = three_mb_file(client)
    client.put_file("r@master:/a-first", b"first")
    objects = inner(client).runtime.objects
    replace_object(objects, pack_key(pack), objects.get_range(pack_key(pack), 0, 2_000_000),
                   tmp_path)  # fmt: skip
    got: dict[str, bytes] = {}
    with pytest.raises((Corrupt, StorageError)) as caught:
        for f, chunks in client.read_files("r@master:/"):
            got[f.path] = b"".join(chunks)
    assert got == {"/a-first": b"first"}
    assert pack in str(caught.value) or "from the server" in str(caught.value)


@pytest.mark.every_backend
@pytest.mark.parametrize("damage", ["missing", "flipped"])
def test_a_restore_reading_ahead_meets_a_damaged_pack_where_it_is(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A damaged pack in the middle of a restore (gone, or one byte of it flipped) is read
    ahead, in parallel, while the files before it are still being given out: those files
    come whole, then the restore fails with the error a read of the damaged blob alone gives,
    naming the pack; it does not hang, and no read-ahead thread is left."""
    client.create_repo("r")
    groups = {g: {f"/{g}/f{i:03d}": os.urandom(3000) for i in range(60)} for g in "bac"}
    for files in groups.values():  # one commit, one pack each: /b's is written first
        client.modify_file("r@master", [bytes_op(data, path) for path, data in files.items()])
    blobs = inner(client).pfs.blobs
    monkeypatch.setattr(blobs, "read_ahead", ReadAhead(concurrency=8, window=64 << 20))
    b_chunks = [_chunks_of(client, f"r@master:{path}")[0] for path in sorted(groups["b"])]
    pack = blobs.locate(b_chunks[:1])[b_chunks[0]].pack
    objects = inner(client).runtime.objects
    if damage == "missing":
        objects.delete(pack_key(pack))
        expected = dict(groups["a"])
    else:
        flip_byte(objects, pack_key(pack), blobs.locate(b_chunks[30:31])[b_chunks[30]].offset,
                  tmp_path)  # fmt: skip
        expected = {**groups["a"], **dict(sorted(groups["b"].items())[:30])}

    got: dict[str, bytes] = {}
    with pytest.raises(Corrupt) as caught:
        for f, chunks in client.read_files("r@master:/"):
            got[f.path] = b"".join(chunks)
    assert got == expected
    assert pack in str(caught.value)
    assert damage != "flipped" or "hash mismatch" in str(caught.value)
    assert read_threads() == []
