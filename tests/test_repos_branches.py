"""Repos and branches: create, list, inspect, update, delete; branching copies no data."""

from __future__ import annotations

import pytest

from haathi.client import Client
from haathi.errors import AlreadyExists, InvalidArgument, NotFound
from tests.internals import inner


@pytest.mark.every_shape
def test_repo_lifecycle(client: Client) -> None:
    client.create_repo("images", "raw images")
    client.create_repo("labels")
    assert [r.name for r in client.list_repo()] == ["images", "labels"]
    info = client.inspect_repo("images")
    assert info.description == "raw images"
    assert client.update_repo("images", "all images").description == "all images"
    client.delete_repo("labels")
    assert [r.name for r in client.list_repo()] == ["images"]
    with pytest.raises(NotFound):
        client.inspect_repo("labels")


def test_repo_size_follows_master(client: Client) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"x" * 1000)
    assert client.inspect_repo("r").size_bytes == 1000


def test_create_repo_twice_fails_and_keeps_the_first(client: Client) -> None:
    client.create_repo("r", "first")
    with pytest.raises(AlreadyExists):
        client.create_repo("r", "second")
    assert client.inspect_repo("r").description == "first"


@pytest.mark.parametrize("name", ["lenny.123", "/repo", "lenny:", "a b", "", "-x", "é"])
def test_invalid_repo_names(client: Client, name: str) -> None:
    with pytest.raises(InvalidArgument):
        client.create_repo(name)
    assert client.list_repo() == []


def test_delete_unknown_repo(client: Client) -> None:
    with pytest.raises(NotFound):
        client.delete_repo("ghost")


@pytest.mark.every_shape
def test_branching_is_metadata_only(client: Client) -> None:
    client.create_repo("r")
    cid = client.put_file("r@master:/big", b"y" * 300_000)
    objects_before = sum(1 for _ in inner(client).runtime.objects.list_objects())
    client.create_branch("r@dev", head="master")
    assert client.inspect_branch("r@dev").head == cid
    assert sum(1 for _ in inner(client).runtime.objects.list_objects()) == objects_before
    client.put_file("r@dev:/only-dev", b"d")
    assert [f.path for f in client.list_file("r@master:/")] == ["/big"]
    assert [f.path for f in client.list_file("r@dev:/")] == ["/big", "/only-dev"]
    assert [b.name for b in client.list_branch("r")] == ["dev", "master"]


def test_create_branch_moves_an_existing_branch(client: Client) -> None:
    client.create_repo("r")
    first = client.put_file("r@master:/a", b"1")
    client.put_file("r@master:/a", b"2")
    client.create_branch("r@master", head=first)
    assert client.get_file("r@master:/a") == b"1"


def test_delete_branch_keeps_commits(client: Client) -> None:
    client.create_repo("r")
    cid = client.put_file("r@feature:/a", b"1")
    client.delete_branch("r@feature")
    with pytest.raises(NotFound):
        client.inspect_branch("r@feature")
    assert client.get_file(f"r@{cid}:/a") == b"1"


@pytest.mark.parametrize("name", ["0123456789abcdef0123456789abcdef", "bad.name", "a/b"])
def test_invalid_branch_names(client: Client, name: str) -> None:
    client.create_repo("r")
    with pytest.raises(InvalidArgument):
        client.create_branch(f"r@{name}")
    assert client.list_branch("r") == []


@pytest.mark.every_shape
def test_unknown_branch_and_repo(client: Client) -> None:
    client.create_repo("r")
    with pytest.raises(NotFound):
        client.inspect_branch("r@nope")
    with pytest.raises(NotFound):
        client.list_branch("nope")
    with pytest.raises(NotFound):
        client.create_branch("r@b", head="master")
