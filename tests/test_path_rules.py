"""What a tree can hold, so that ``get file -r`` can always restore it: no path is both a file
and a directory, no name comes in two Unicode spellings (NFC and NFD), and no name or path is
too long for a file system. Every write refuses them and stores nothing; ``fsck`` reports
them in trees that older haathi versions wrote."""

from __future__ import annotations

import io
import tarfile
import unicodedata
from pathlib import Path

import pytest

from haathi.client import Client
from haathi.client.sources import bytes_op
from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.models.ops import CopyOp, DeleteOp
from haathi.models.refspec import parse_file
from tests.conftest import Cli
from tests.internals import plant_commit

COLLISION = "file / directory path collision"


def files(client: Client, ref: str = "r@master") -> dict[str, bytes]:
    return {f.path: client.get_file(f"{ref}:{f.path}") for f in client.walk_file(f"{ref}:/")}


def commits(client: Client, repo: str = "r") -> int:
    return len(client.list_commit(repo))


# ---- one path, a file and a directory ----------------------------------------------------


@pytest.mark.every_shape
def test_a_file_cannot_have_a_file_below_it(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/e", b"file")
    with pytest.raises(FailedPrecondition, match=f"{COLLISION}: /e is a file, so /e/f cannot"):
        client.put_file("r@master:/e/f", b"below")
    with pytest.raises(FailedPrecondition, match=COLLISION):
        client.put_file("r@master:/e/f/g", b"deeper")
    with pytest.raises(FailedPrecondition, match=COLLISION):
        client.put_file("r@master:/e/f", b"appended", append=True)
    assert files(client) == {"/e": b"file"}
    assert commits(client) == 1


def test_a_directory_cannot_become_a_file(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/d/sub/f", b"1")
    for path in ("/d", "/d/sub"):
        with pytest.raises(FailedPrecondition, match=f"{path} is a directory .* cannot be a file"):
            client.put_file(f"r@master:{path}", b"2")
    # a sibling whose name starts like the directory's is no collision ('-' sorts before '/')
    client.put_file("r@master:/d-x", b"3")
    client.put_file("r@master:/d/sub-x", b"4")
    assert set(files(client)) == {"/d/sub/f", "/d-x", "/d/sub-x"}


@pytest.mark.every_shape
def test_one_request_writing_both_writes_nothing(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/keep", b"0")
    with pytest.raises(FailedPrecondition, match=COLLISION):
        client.modify_file("r@master", [bytes_op(b"1", "/e"), bytes_op(b"2", "/e/f")])
    with pytest.raises(FailedPrecondition, match=COLLISION):
        client.modify_file("r@master", [bytes_op(b"2", "/e/f"), bytes_op(b"1", "/e")])
    assert files(client) == {"/keep": b"0"}
    assert commits(client) == 1


def test_a_delete_in_the_same_request_makes_room(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/e", b"file")
    client.modify_file("r@master", [DeleteOp("/e"), bytes_op(b"below", "/e/f")])
    assert files(client) == {"/e/f": b"below"}
    client.modify_file("r@master", [DeleteOp("/e", recursive=True), bytes_op(b"file", "/e")])
    assert files(client) == {"/e": b"file"}
    # only the tree the whole request makes counts, not the steps on the way
    client.modify_file("r@master", [bytes_op(b"x", "/e/g"), DeleteOp("/e")])
    assert files(client) == {"/e/g": b"x"}


def test_copy_is_checked_like_a_put(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/src/a", b"a")
    client.put_file("r@master:/file", b"f")
    with pytest.raises(FailedPrecondition, match="/file is a file, so /file/a cannot"):
        client.copy_file("r@master:/src", "r@master:/file")  # a directory onto a file
    with pytest.raises(FailedPrecondition, match="/src is a directory"):
        client.copy_file("r@master:/file", "r@master:/src")  # a file onto a directory
    assert set(files(client)) == {"/src/a", "/file"}


def test_open_commit_refuses_at_the_write_not_at_finish(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/old/x", b"parent's")
    commit = client.start_commit("r@master")
    client.put_file("r@master:/e", b"staged")
    with pytest.raises(FailedPrecondition, match="/e is a file, so /e/f cannot"):
        client.put_file("r@master:/e/f", b"x")
    with pytest.raises(FailedPrecondition, match="/old is a directory"):
        client.put_file("r@master:/old", b"x")  # a directory of the parent's tree
    client.delete_file("r@master:/e")
    client.put_file("r@master:/e/f", b"now fine")
    client.delete_file("r@master:/old", recursive=True)
    client.put_file("r@master:/old", b"a file now")
    client.finish_commit(f"r@{commit.id}")
    assert files(client) == {"/e/f": b"now fine", "/old": b"a file now"}


def test_open_commit_with_many_staged_changes(client: Client) -> None:
    # enough staged rows that the check looks up the ones near the written path by index
    client.create_repo("r")
    client.start_commit("r@master")
    client.modify_file("r@master", [bytes_op(b"x", f"/many/{i:03}") for i in range(200)])
    client.modify_file("r@master", [DeleteOp("/many/007")])
    with pytest.raises(FailedPrecondition, match="/many/005 is a file"):
        client.put_file("r@master:/many/005/below", b"x")
    with pytest.raises(FailedPrecondition, match="/many is a directory"):
        client.put_file("r@master:/many", b"x")
    client.put_file("r@master:/many/007/below", b"deleted above: fine")
    client.put_file("r@master:/many-sibling", b"fine")
    client.finish_commit("r@master")
    got = files(client)
    assert len(got) == 201 and got["/many/007/below"] == b"deleted above: fine"


def test_cli_put_and_untar_refuse_with_one_line(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    (tmp_path / "x").write_bytes(b"x")
    cli("put", "file", "r@master:/e", "-f", str(tmp_path / "x"))
    res = cli.fails("put", "file", "r@master:/e/f", "-f", str(tmp_path / "x"))
    assert res.code == FailedPrecondition.exit_code and COLLISION in res.err

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("t", "t/inner"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"1"))
    (tmp_path / "both.tar").write_bytes(buf.getvalue())
    res = cli.fails("put", "file", "r@master:/", "-f", str(tmp_path / "both.tar"), "--untar")
    assert COLLISION in res.err and "/t" in res.err
    assert [ln.split()[0] for ln in cli("list", "file", "r@master:/").out.splitlines()[1:]] == [
        "/e"
    ]


# ---- names: bytes as given, one spelling per name ----------------------------------------

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def test_a_name_keeps_its_spelling_and_its_other_spelling_is_refused(client: Client) -> None:
    assert NFC != NFD
    client.create_repo("r")
    client.put_file(f"r@master:/{NFD}", b"from a Mac")
    assert [f.path for f in client.list_file("r@master:/")] == [f"/{NFD}"]  # as written
    client.put_file(f"r@master:/{NFD}", b"overwritten")  # the same spelling: fine
    with pytest.raises(FailedPrecondition, match=r"two Unicode spellings \(NFC and NFD\)"):
        client.put_file(f"r@master:/{NFC}", b"from Linux")
    # a directory's name counts too
    client.put_file(f"r@master:/dir/{NFC}/a", b"a")
    with pytest.raises(FailedPrecondition, match="two Unicode spellings"):
        client.put_file(f"r@master:/dir/{NFD}/b", b"b")
    with pytest.raises(FailedPrecondition, match="two Unicode spellings"):
        client.modify_file(
            "r@master", [bytes_op(b"1", f"/new/{NFC}"), bytes_op(b"2", f"/new/{NFD}")]
        )
    assert files(client) == {f"/{NFD}": b"overwritten", f"/dir/{NFC}/a": b"a"}
    # once the other spelling is gone, this one is free
    client.modify_file("r@master", [DeleteOp(f"/{NFD}"), bytes_op(b"now", f"/{NFC}")])
    assert files(client) == {f"/{NFC}": b"now", f"/dir/{NFC}/a": b"a"}


# ---- lengths ---------------------------------------------------------------------------


def test_names_of_at_most_255_bytes_are_stored_and_restored(cli: Cli, tmp_path: Path) -> None:
    cli("create", "repo", "r")
    longest = "n" * 255
    multibyte = "é" * 127  # 254 bytes of UTF-8
    (tmp_path / "x").write_bytes(b"x")
    for name in (longest, multibyte):
        cli("put", "file", f"r@master:/d/{name}", "-f", str(tmp_path / "x"))
    cli("get", "file", "-r", "r@master:/d", "-o", str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([longest, multibyte])

    for name, size in (("n" * 256, 256), ("é" * 128, 256)):
        res = cli.fails("put", "file", f"r@master:/d/{name}", "-f", str(tmp_path / "x"))
        assert res.code == InvalidArgument.exit_code
        assert f"is {size} bytes long (UTF-8)" in res.err and "at most 255 bytes" in res.err


def test_a_path_of_more_than_4095_bytes_is_refused(client: Client) -> None:
    client.create_repo("r")
    longest = "/".join(["", *["d" * 254] * 16]) + "/" + "f" * (4095 - 16 * 255 - 1)
    assert len(longest.encode()) == 4095
    client.put_file(f"r@master:{longest}", b"deep")
    assert client.get_file(f"r@master:{longest}") == b"deep"
    with pytest.raises(InvalidArgument, match=r"is 4096 bytes long .* at most 4095 bytes"):
        client.put_file(f"r@master:{longest}x", b"deeper")
    # a copy cannot make one either
    client.put_file("r@master:/src/" + "s" * 200, b"s")
    with pytest.raises(InvalidArgument, match="at most 4095 bytes"):
        client.copy_file("r@master:/src", f"r@master:{longest[:3900]}")
    assert commits(client) == 2


# ---- trees of older stores ---------------------------------------------------------------


def test_fsck_reports_what_writes_now_refuse_in_old_trees(client: Client, cli: Cli) -> None:
    client.create_repo("r")
    client.put_file("r@master:/ok", b"fine")
    old = plant_commit(client, "r", {
        "/e": b"a file", "/e/f": b"and a file below it", f"/{NFC}": b"1", f"/{NFD}": b"2",
        "/" + "n" * 300: b"long",
    })  # fmt: skip
    found = {(p.kind, p.severity, p.subject) for p in client.fsck()}
    assert found == {
        ("path_collision", "error", f"r@{old}:/e"),
        ("path_spelling", "warning", f"r@{old}:/{min(NFC, NFD)}"),
        ("long_path", "error", f"r@{old}:/{'n' * 300}"),
    }
    collision = next(p for p in client.fsck() if p.kind == "path_collision")
    assert "/e is a file and a directory (/e/f is a file in it)" in collision.message
    assert "haathi delete file r@master:/e" in collision.repair
    res = cli("fsck", ok=False)
    assert res.code != 0 and "/e is a file and a directory" in res.err

    # restoring that commit fails with one line, not an internal error
    res = cli.fails("get", "file", "-r", f"r@{old}:/", "-o", str(cli.cwd / "out"))
    assert "cannot write" in res.err and "internal error" not in res.err

    # writes elsewhere still work; the repair is a new commit without the collision
    client.put_file("r@master:/other", b"x")
    client.delete_file("r@master:/e")
    assert "/e/f" in files(client)
    assert {p.subject for p in client.fsck()} == {  # the old commits keep theirs
        f"r@{old}:/e",
        f"r@{old}:/{min(NFC, NFD)}",
        f"r@{old}:/{'n' * 300}",
    }


def test_an_open_commit_of_an_older_haathi_cannot_finish_with_a_collision(
    client: Client,
) -> None:
    client.create_repo("r")
    commit = client.start_commit("r@master")
    spec = parse_file("r@master:/")
    plant_commit(client, "r", {"/e": b"1", "/e/f": b"2"}, staged_into=commit.id)
    with pytest.raises(FailedPrecondition, match=f"{COLLISION}.*stays open"):
        client.finish_commit(str(spec.commit))
    client.delete_file("r@master:/e")
    client.finish_commit(str(spec.commit))
    assert files(client) == {"/e/f": b"2"}


def test_copy_op_paths_are_made_canonical(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"a")
    client.modify_file("r@master", [CopyOp(parse_file("r@master:/a"), "b//c/")])
    assert files(client) == {"/a": b"a", "/b/c": b"a"}


def test_the_fast_path_for_canonical_paths_agrees_with_the_full_checks() -> None:
    """Paths that are already canonical skip the checks one by one; every path made of these
    pieces (up to 4 of them) normalizes, or is refused, exactly as the full checks say."""
    import itertools

    from haathi.models import paths

    def outcome(fn: object, p: str) -> str:
        try:
            return fn(p)  # type: ignore[operator, no-any-return]
        except InvalidArgument as exc:
            return f"refused: {exc}"

    pieces = ["/", ".", "..", "a", "b.c", " ", "\x00", "\x1f", "\x7f", "é", "\ud800", "...", ".a"]
    for k in range(1, 5):
        for combo in itertools.product(pieces, repeat=k):
            p = "".join(combo)
            assert outcome(paths.normalize, p) == outcome(paths._normalize, p), repr(p)
