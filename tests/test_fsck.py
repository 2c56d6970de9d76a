"""fsck finds damage on either backend and, with --fix, repairs only what is safe to repair."""

from __future__ import annotations

import os
from pathlib import Path

from haathi.client import Client
from haathi.storage.blobs import pack_key
from tests.conftest import Cli
from tests.internals import inner
from tests.test_bad_input import _chunks_of, flip_byte


def kinds(problems: list) -> list[tuple[str, bool]]:  # type: ignore[type-arg]
    return sorted((p.kind, bool(p.extra.get("fixed"))) for p in problems)


def pack_of(client: Client, target: str) -> str:
    digest = _chunks_of(client, target)[0]
    return inner(client).pfs.blobs.locate([digest])[digest].pack


def test_fast_fsck_checks_sizes_and_full_fsck_checks_hashes(
    client: Client, tmp_path: Path
) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(100_000))
    digest = _chunks_of(client, "r@master:/f")[0]
    loc = inner(client).pfs.blobs.locate([digest])[digest]
    flip_byte(inner(client).runtime.objects, pack_key(loc.pack), loc.offset + 10, tmp_path)
    assert client.fsck(fast=True) == []  # same size: only hashing finds it
    assert kinds(client.fsck()) == [("corrupt_blob", False), ("needed_blob_lost", False)]


def test_fix_drops_index_rows_of_a_lost_pack_nothing_needs(client: Client, cli: Cli) -> None:
    client.create_repo("tmp")
    client.put_file("tmp@master:/f", os.urandom(50_000))
    lost = pack_of(client, "tmp@master:/f")
    client.delete_repo("tmp")
    inner(client).runtime.objects.delete(pack_key(lost))
    assert kinds(client.fsck()) == [("missing_pack", False)]
    assert cli("fsck", ok=False).code == 1

    res = cli("fsck", "--fix")
    assert res.code == 0 and "fixed" in res.err
    assert client.fsck() == []


def test_fix_never_drops_what_a_commit_needs(client: Client, cli: Cli) -> None:
    client.create_repo("r")
    client.put_file("r@master:/f", os.urandom(50_000))
    inner(client).runtime.objects.delete(pack_key(pack_of(client, "r@master:/f")))
    found = client.fsck(fix=True)
    assert ("missing_pack", False) in kinds(found)  # reported, not "fixed"
    assert ("needed_blob_lost", False) in kinds(found)
    assert cli("fsck", "--fix", ok=False).code == 1
    assert ("missing_pack", False) in kinds(client.fsck())


def test_fix_drops_a_corrupt_unused_blob_so_new_writes_store_a_good_copy(
    client: Client, tmp_path: Path
) -> None:
    data = os.urandom(80_000)
    client.create_repo("tmp")
    client.put_file("tmp@master:/f", data)
    digest = _chunks_of(client, "tmp@master:/f")[0]
    loc = inner(client).pfs.blobs.locate([digest])[digest]
    client.delete_repo("tmp")
    flip_byte(inner(client).runtime.objects, pack_key(loc.pack), loc.offset + 5, tmp_path)
    assert kinds(client.fsck(fix=True)) == [("corrupt_blob", True)]
    client.create_repo("r")
    client.put_file("r@master:/again", data)  # not deduplicated against the corrupt copy
    assert client.get_file("r@master:/again") == data
    assert client.fsck() == []
