"""Commits: open/finish, one-off commits, history, ancestry syntax, wait, delete, squash."""

from __future__ import annotations

import threading
import time

import pytest

from haathi.client import Client
from haathi.errors import FailedPrecondition, InvalidArgument, NotFound


@pytest.mark.every_shape
def test_open_commit_collects_writes_until_finished(client: Client) -> None:
    client.create_repo("r")
    with client.start_commit("r@master", description="two files") as commit:
        commit.put_file("/a.txt", b"a")
        commit.put_file("/b.txt", b"b")
        info = client.inspect_commit("r@master")
        assert info.state.value == "STARTED" and info.finished is None
        # An open commit is readable with its writes so far.
        assert client.get_file("r@master:/a.txt") == b"a"
    info = client.inspect_commit("r@master")
    assert info.state.value == "FINISHED"
    assert info.description == "two files"
    assert (info.file_count, info.size_bytes) == (2, 2)
    assert info.finished is not None and info.finished >= info.started
    assert info.origin.value == "USER"
    assert len(client.list_commit("r@master")) == 1


@pytest.mark.every_shape
def test_exception_in_commit_block_leaves_nothing_visible(client: Client) -> None:
    client.create_repo("r")
    first = client.put_file("r@master:/keep", b"k")
    with pytest.raises(RuntimeError), client.start_commit("r@master") as commit:
        commit.put_file("/half", b"h")
        raise RuntimeError("boom")
    assert client.inspect_commit("r@master").id == first
    assert [c.id for c in client.list_commit("r")] == [first]
    assert [f.path for f in client.list_file("r@master:/")] == ["/keep"]


def test_each_put_without_open_commit_is_one_atomic_commit(client: Client) -> None:
    client.create_repo("r")
    ids = [client.put_file(f"r@master:/f{i}", b"x") for i in range(3)]
    history = client.list_commit("r@master")
    assert [c.id for c in history] == ids[::-1]
    assert [c.parent for c in history] == [ids[1], ids[0], None]


def test_put_into_open_commit_by_branch_goes_into_that_commit(client: Client) -> None:
    client.create_repo("r")
    handle = client.start_commit("r@master")
    assert client.put_file("r@master:/a", b"1") == handle.id
    client.finish_commit("r@master")
    assert len(client.list_commit("r")) == 1


@pytest.mark.every_shape
def test_writes_to_finished_commit_fail(client: Client) -> None:
    client.create_repo("r")
    cid = client.put_file("r@master:/a", b"1")
    with pytest.raises(FailedPrecondition):
        client.put_file(f"r@{cid}:/b", b"2")
    with pytest.raises(FailedPrecondition):
        client.finish_commit(f"r@{cid}")
    assert [f.path for f in client.list_file(f"r@{cid}:/")] == ["/a"]


def test_finishing_twice_fails(client: Client) -> None:
    client.create_repo("r")
    handle = client.start_commit("r@master")
    handle.finish()
    with pytest.raises(FailedPrecondition):
        client.finish_commit(f"r@{handle.id}")


def test_start_commit_on_branch_with_open_commit_fails(client: Client) -> None:
    client.create_repo("r")
    client.start_commit("r@master")
    with pytest.raises(FailedPrecondition):
        client.start_commit("r@master")


def test_start_commit_with_parent_forks(client: Client) -> None:
    client.create_repo("r")
    first = client.put_file("r@master:/a", b"1")
    client.put_file("r@master:/b", b"2")
    with client.start_commit("r@fork", parent=first) as c:
        c.put_file("/c", b"3")
    assert [f.path for f in client.list_file("r@fork:/")] == ["/a", "/c"]
    assert client.inspect_commit("r@fork").parent == first


def test_ancestry_syntax(client: Client) -> None:
    client.create_repo("r")
    ids = [client.put_file("r@master:/v", str(i).encode()) for i in range(5)]
    assert client.inspect_commit("r@master^").id == ids[3]
    assert client.inspect_commit("r@master^^").id == ids[2]
    assert client.inspect_commit("r@master~3").id == ids[1]
    assert client.inspect_commit("r@master^2").id == ids[2]
    assert client.inspect_commit("r@master.1").id == ids[0]
    assert client.inspect_commit("r@master.2").id == ids[1]
    assert client.inspect_commit("r@master.-1").id == ids[3]
    assert client.get_file("r@master~4:/v") == b"0"
    assert client.inspect_commit(f"r@{ids[2]}^").id == ids[1]
    assert client.inspect_commit(f"r@{ids[2][:10]}").id == ids[2]
    with pytest.raises(NotFound):
        client.inspect_commit("r@master~5")
    with pytest.raises(NotFound):
        client.inspect_commit("r@master.6")
    with pytest.raises(InvalidArgument):
        client.inspect_commit("r@master.0")


@pytest.mark.every_shape
def test_unknown_commit(client: Client) -> None:
    client.create_repo("r")
    with pytest.raises(NotFound):
        client.inspect_commit("r@0123456789abcdef0123456789abcdef")
    with pytest.raises(NotFound):
        client.inspect_commit("r@master")  # no commits yet
    with pytest.raises(NotFound):
        client.inspect_commit("ghost@master")


def test_list_commit_number_and_repo_wide(client: Client) -> None:
    client.create_repo("r")
    for i in range(4):
        client.put_file(f"r@master:/{i}", b"x")
    client.put_file("r@other:/x", b"y")
    assert len(client.list_commit("r@master", number=2)) == 2
    assert len(client.list_commit("r")) == 5
    cid = client.inspect_commit("r@other").id
    assert [c.id for c in client.list_commit(cid)] == [cid]


@pytest.mark.every_shape
def test_wait_commit_blocks_until_finished(client: Client) -> None:
    client.create_repo("r")
    handle = client.start_commit("r@master")
    done: list[float] = []

    def waiter() -> None:
        client.wait_commit(f"r@{handle.id}", timeout=10)
        done.append(time.monotonic())

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert not done
    finished_at = time.monotonic()
    handle.finish()
    t.join(5)
    assert done and done[0] >= finished_at
    assert client.wait_commit(handle.id)[0].id == handle.id


def test_delete_newest_commit_moves_head_back(client: Client) -> None:
    client.create_repo("r")
    first = client.put_file("r@master:/a", b"1")
    second = client.put_file("r@master:/a", b"2")
    with pytest.raises(FailedPrecondition):
        client.delete_commit(f"r@{first}")  # has a child
    client.delete_commit("r@master")
    assert client.inspect_commit("r@master").id == first
    assert client.get_file("r@master:/a") == b"1"
    with pytest.raises(NotFound):
        client.inspect_commit(f"r@{second}")


@pytest.mark.every_shape
def test_squash_newest_commit_merges_it_with_its_parent(client: Client) -> None:
    client.create_repo("r")
    first = client.put_file("r@master:/a", b"1")
    second = client.put_file("r@master:/b", b"2")
    third = client.put_file("r@master:/c", b"3")
    client.squash_commit("r@master")
    history = client.list_commit("r@master")
    assert [c.id for c in history] == [third, first]
    assert [f.path for f in client.list_file("r@master:/")] == ["/a", "/b", "/c"]
    with pytest.raises(NotFound):
        client.inspect_commit(f"r@{second}")
    # Squashing a commit in the middle folds it into its child.
    client.squash_commit(f"r@{first}")
    assert [c.id for c in client.list_commit("r@master")] == [third]
    assert client.get_file("r@master:/a") == b"1"
    with pytest.raises(FailedPrecondition):
        client.squash_commit("r@master")  # nothing left to squash into


def history(client: Client, branch: str) -> list[str]:
    return [c.id for c in client.list_commit(branch)]


def test_a_branch_head_is_never_squashed_away(client: Client) -> None:
    """The README's tour: master's newest commit gets a child on another branch. Squashing it
    would take its content out of master; it is refused (as Pachyderm refuses a head) and
    nothing changes. A commit inside the history still folds into its child."""
    client.create_repo("images")
    first = client.put_file("images@master:/photos/cat.png", b"cat")
    head = client.put_file("images@master:/a.png", b"a")
    client.create_branch("images@dev", head="master")
    on_dev = client.copy_file("images@master:/photos", "images@dev:/copy")
    assert client.inspect_commit(f"images@{on_dev}").parent == head
    before = {
        b: (history(client, f"images@{b}"), client.list_file(f"images@{b}:/"))
        for b in ("master", "dev")
    }
    with pytest.raises(
        FailedPrecondition,
        match=f"images@{head}: it is the head of branch master would lose its content",
    ):
        client.squash_commit("images@master")
    assert {
        b: (history(client, f"images@{b}"), client.list_file(f"images@{b}:/"))
        for b in ("master", "dev")
    } == before
    assert client.get_file("images@master:/a.png") == b"a"
    # inside the history (no branch's head): folded into its child, content kept
    client.squash_commit(f"images@{first}")
    assert history(client, "images@master") == [head]
    assert history(client, "images@dev") == [on_dev, head]
    assert client.get_file("images@master:/photos/cat.png") == b"cat"


def test_squashing_a_newest_commit_into_a_parent_that_heads_a_branch_is_refused(
    client: Client,
) -> None:
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    base = client.put_file("r@master:/b", b"2")
    client.create_branch("r@release", head="master")  # a bookmark on master's head
    newest = client.put_file("r@master:/c", b"3")
    with pytest.raises(
        FailedPrecondition,
        match=f"r@{newest} into its parent {base}: the parent is the head of branch release",
    ):
        client.squash_commit("r@master")
    assert client.inspect_commit("r@release").id == base
    assert history(client, "r@master")[:2] == [newest, base]


def test_a_commit_with_an_open_child_is_not_squashed(client: Client) -> None:
    """An open commit is built on its parent's files: removing the parent would drop them."""
    client.create_repo("r")
    client.put_file("r@master:/a", b"1")
    middle = client.put_file("r@master:/b", b"2")
    with client.start_commit("r@master") as open_commit:
        open_commit.put_file("/c", b"3")
        with pytest.raises(FailedPrecondition, match=f"open child commit {open_commit.id}"):
            client.squash_commit(f"r@{middle}")
    assert {f.path for f in client.list_file("r@master:/")} == {"/a", "/b", "/c"}


def test_deleting_a_commit_that_heads_two_branches_is_refused(client: Client) -> None:
    """Deleting it would silently move the other branch back too."""
    client.create_repo("r")
    first = client.put_file("r@master:/a", b"1")
    second = client.put_file("r@master:/b", b"2")
    client.create_branch("r@dev", head="master")
    with pytest.raises(FailedPrecondition, match="head of branches dev, master"):
        client.delete_commit("r@dev")
    assert client.inspect_commit("r@master").id == client.inspect_commit("r@dev").id == second
    client.create_branch("r@dev", head=first)  # move the other branch: then it can go
    client.delete_commit("r@master")
    assert client.inspect_commit("r@master").id == first
