"""Auth roles on projects, as Pachyderm's (``src/server/auth/server/roles.go``): a project's
creator owns it (``projectOwner``); ``projectViewer`` sees its repos and pipelines listed,
``projectWriter`` also creates them, ``projectOwner`` also owns every repo of it and binds
roles on it; a repo role bound on a project holds for every repo of it, also those made
later; ``allClusterUsers`` (every caller with a token) holds ``projectCreator`` on the cluster
and ``projectWriter`` on ``default`` from activation, so what any token could do before
project roles it still may in ``default``; and a store whose auth was active before project
roles keeps working once upgraded.

The Client tests talk to the server's app in process (``tests/in_process.py``); the CLI runs
on the embedded store, which acts as root.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haathi import meta
from haathi.client import Client
from haathi.errors import InvalidArgument, NotFound, PermissionDenied
from haathi.models.ids import split_key
from tests.conftest import Cli
from tests.in_process import InProcessServer
from tests.test_store_identity import SINCE_0017, run_sql


def copy_spec(name: str, repo: str) -> dict[str, Any]:
    """A pipeline ``name`` copying each file of ``repo`` (both keys: ``project/name``)."""
    (project, bare), (in_project, in_bare) = split_key(name), split_key(repo)
    return {
        "pipeline": {"name": bare, "project": {"name": project}},
        "input": {"pfs": {"repo": in_bare, "project": in_project, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f"cp /pfs/{in_bare}/* /pfs/out/"]},
    }


class Lab:
    """A server with auth on: root, who made project ``vault`` (repo ``vault/gold``); alice,
    who made project ``lab`` (repo ``lab/raw``, with a file); and clients for users with no
    role of their own: bob, carol, dave."""

    def __init__(self, srv: InProcessServer) -> None:
        self.srv = srv
        self.clients: list[Client] = []
        with srv.connect() as anon:
            self.root = self.connect(anon.auth_activate())
        self.root.create_project("vault")
        self.root.create_repo("vault/gold")
        self.root.put_file("vault/gold@master:/g.txt", b"gold")
        users = [self.user(name) for name in ("alice", "bob", "carol", "dave")]
        self.alice, self.bob, self.carol, self.dave = users
        self.alice.create_project("lab", "experiments")
        self.alice.create_repo("lab/raw")
        self.alice.put_file("lab/raw@master:/a.txt", b"a")

    def connect(self, token: str) -> Client:
        c = self.srv.connect(token=token)
        self.clients.append(c)
        return c

    def user(self, name: str) -> Client:
        return self.connect(self.root.get_auth_token(f"user:{name}"))

    def bindings(self) -> dict[str, Any]:
        """Every binding of both projects and their repos (what a refusal must leave)."""
        root = self.root
        return {
            "projects": {p: root.get_project_roles(p).bindings for p in ("lab", "vault")},
            "repos": {r.name: root.get_repo_roles(r.name).bindings
                      for r in root.list_repo(all_projects=True)},
            "cluster": root.get_cluster_roles().bindings,
        }  # fmt: skip

    def close(self) -> None:
        for c in self.clients:
            c.close()


@pytest.fixture
def lab(app_server: InProcessServer) -> Iterator[Lab]:
    t = Lab(app_server)
    yield t
    t.close()


def names(infos: list[Any]) -> list[str]:
    return [i.name for i in infos]


# ---- owners, viewers, writers ----------------------------------------------------------------


@pytest.mark.every_backend
def test_a_projects_creator_owns_it_and_alone_binds_roles_on_it(lab: Lab) -> None:
    alice, bob = lab.alice, lab.bob
    assert alice.get_project_roles("lab").bindings == {"user:alice": ["projectOwner"]}
    assert alice.inspect_project("lab").roles == ("projectOwner",)
    assert alice.check_project("lab").to_dict() == {
        "subject": "user:alice",
        "project": "lab",
        "roles": ["projectOwner"],
        "permissions": ["read", "write", "own", "list_repo", "create_repo", "own_project"],
    }
    # only an owner binds, updates or deletes: the others are refused and nothing changes
    before = lab.bindings()
    with pytest.raises(PermissionDenied, match="user:bob is not authorized to own project lab"):
        bob.set_project_roles("lab", "projectOwner", "user:bob")
    with pytest.raises(PermissionDenied, match="needs projectOwner"):
        bob.update_project("lab", "mine now")
    with pytest.raises(PermissionDenied, match="needs projectOwner"):
        bob.delete_project("lab", force=True)
    with pytest.raises(PermissionDenied, match="needs projectOwner"):
        bob.check_project("lab", "user:alice")  # another's access: owners only
    assert lab.bindings() == before
    assert lab.root.inspect_project("lab").description == "experiments"

    alice.set_project_roles("lab", "projectOwner", "user:bob")  # now bob may
    bob.update_project("lab", "shared")
    assert bob.inspect_project("lab").roles == ("projectOwner",)
    # an owner of the project owns every repo of it, whoever made it
    bob.set_repo_roles("lab/raw", "repoReader", "user:carol")
    assert lab.carol.get_file("lab/raw@master:/a.txt") == b"a"
    bob.delete_project("lab", force=True)
    assert "lab" not in names(lab.root.list_project())
    # its bindings went with it: a new project of that name starts with its creator's only
    lab.dave.create_project("lab")
    assert lab.dave.get_project_roles("lab").bindings == {"user:dave": ["projectOwner"]}


def test_a_project_viewer_sees_its_repos_and_pipelines_but_cannot_read_or_write(
    lab: Lab,
) -> None:
    alice, bob, root = lab.alice, lab.bob, lab.root
    alice.create_pipeline(copy_spec("lab/copy", "lab/raw"))
    assert bob.list_repo(project="lab") == []  # no role: nothing of lab is listed
    alice.set_project_roles("lab", "projectViewer", "user:bob")
    assert names(bob.list_repo(project="lab")) == ["lab/copy", "lab/raw"]
    assert names(bob.list_pipeline(project="lab")) == ["lab/copy"]
    assert bob.list_job(project="lab") == []  # jobs, as files, are for readers
    assert bob.inspect_project("lab").roles == ("projectViewer",)

    def state() -> Any:
        repos = root.list_repo(all_projects=True)
        return lab.bindings(), names(repos), [root.list_commit(r.name) for r in repos]

    before = state()
    with pytest.raises(PermissionDenied, match="not authorized to read repo lab/raw: needs repo"):
        bob.get_file("lab/raw@master:/a.txt")
    with pytest.raises(PermissionDenied, match="needs repoWriter"):
        bob.put_file("lab/raw@master:/b.txt", b"b")
    with pytest.raises(
        PermissionDenied,
        match="user:bob is not authorized to create repos and pipelines in project lab: needs "
        "projectWriter",
    ):
        bob.create_repo("lab/mine")
    with pytest.raises(PermissionDenied, match="needs projectWriter"):
        bob.create_pipeline(copy_spec("lab/mine", "lab/raw"))
    assert state() == before


def test_a_project_writer_creates_repos_and_pipelines_in_that_project_only(lab: Lab) -> None:
    alice, dave, root = lab.alice, lab.dave, lab.root
    alice.set_project_roles("lab", "projectWriter", "user:dave")
    dave.create_repo("lab/notes")
    dave.put_file("lab/notes@master:/n.txt", b"n")
    dave.create_pipeline(copy_spec("lab/echo", "lab/notes"))
    assert dave.get_file("lab/echo@master:/n.txt") == b"n"
    assert dave.get_repo_roles("lab/echo").bindings["user:dave"] == ["repoOwner"]
    # he sees lab's other repos listed, and reads only what he made or was given
    assert names(dave.list_repo(project="lab")) == ["lab/echo", "lab/notes", "lab/raw"]
    with pytest.raises(PermissionDenied, match="read repo lab/raw"):
        dave.get_file("lab/raw@master:/a.txt")

    def made() -> Any:
        return names(root.list_repo(all_projects=True)), names(
            root.list_pipeline(all_projects=True)
        )

    before = made()
    with pytest.raises(PermissionDenied, match="in project vault: needs projectWriter"):
        dave.create_repo("vault/notes")
    with pytest.raises(PermissionDenied, match="in project vault: needs projectWriter"):
        dave.create_pipeline(copy_spec("vault/echo", "lab/notes"))
    assert made() == before
    # default is every caller's to write in (allClusterUsers is its projectWriter)
    assert root.get_project_roles("default").bindings == {"allClusterUsers": ["projectWriter"]}
    dave.create_repo("scratch")


@pytest.mark.every_backend
def test_a_repo_role_on_a_project_holds_for_all_its_repos_and_no_other_projects(
    lab: Lab,
) -> None:
    alice, carol, root = lab.alice, lab.carol, lab.root
    alice.create_pipeline(copy_spec("lab/copy", "lab/raw"))
    root.create_pipeline(copy_spec("vault/refine", "vault/gold"))
    alice.set_project_roles("lab", "repoReader", "user:carol")
    assert carol.get_file("lab/raw@master:/a.txt") == b"a"
    alice.create_repo("lab/later")  # made after the binding: it holds there too
    alice.put_file("lab/later@master:/l.txt", b"l")
    assert carol.get_file("lab/later@master:/l.txt") == b"l"
    assert carol.check_repo("lab/later").roles == ["repoReader"]
    with pytest.raises(PermissionDenied, match="needs repoWriter"):
        carol.put_file("lab/later@master:/x", b"x")
    # what carol sees of every project: lab's, nothing of vault's
    assert names(carol.list_repo(all_projects=True)) == ["lab/copy", "lab/later", "lab/raw"]
    assert names(carol.list_pipeline(all_projects=True)) == ["lab/copy"]
    assert [j.pipeline for j in carol.list_job(all_projects=True)] == ["lab/copy"]
    with pytest.raises(PermissionDenied, match="read repo vault/gold"):
        carol.get_file("vault/gold@master:/g.txt")
    with pytest.raises(PermissionDenied, match="read repo vault/refine"):
        carol.list_job("vault/refine")


def before_project_roles() -> str:
    """The schema revision before the migration that binds project roles (by its file, so
    that this holds whatever number the migration takes)."""
    [migration] = (Path(meta.__file__).parent / "migrations" / "versions").glob(
        "*_project_roles.py"
    )
    found = re.search(r'^down_revision = "(\w+)"$', migration.read_text(), re.M)
    assert found is not None
    return found[1]


# ---- a store whose auth was active before project roles ----------------------------------------


@pytest.mark.every_backend
def test_a_store_whose_auth_was_active_before_project_roles_keeps_working(store: Path) -> None:
    """Migration 0017 binds in such a store what ``auth activate`` now does: any token still
    creates repos and pipelines in ``default`` and creates projects, and each project's
    creator owns it."""
    srv = InProcessServer.for_store(str(store)).start()
    try:
        with srv.connect() as anon:
            root_token = anon.auth_activate()
        with srv.connect(token=root_token) as root:
            alice_token, bob_token = (root.get_auth_token(f"user:{u}") for u in ("alice", "bob"))
        with srv.connect(token=alice_token) as alice:
            alice.create_project("lab")
    finally:
        srv.stop()
    run_sql(  # the bindings such a store has not: those of allClusterUsers, project owners
        store,
        "DELETE FROM role_bindings WHERE subject = 'allClusterUsers' OR role = 'projectOwner'",
        *SINCE_0017,  # (and what the migrations after it add)
        f"UPDATE alembic_version SET version_num = '{before_project_roles()}'",
    )
    srv = InProcessServer.for_store(str(store)).start()  # upgraded as it opens
    try:
        with (
            srv.connect(token=root_token) as root,
            srv.connect(token=alice_token) as alice,
            srv.connect(token=bob_token) as bob,
        ):
            alice.create_repo("data")
            alice.put_file("data@master:/d.txt", b"d")
            alice.create_pipeline(copy_spec("copy", "data"))
            assert alice.get_file("copy@master:/d.txt") == b"d"
            alice.set_project_roles("lab", "projectViewer", "user:bob")  # she owns lab
            bob.create_project("bobs")
            bob.create_repo("bobs/notes")
            assert root.get_project_roles("lab").bindings == {
                "user:alice": ["projectOwner"],
                "user:bob": ["projectViewer"],
            }
            assert root.get_cluster_roles().bindings == {"allClusterUsers": ["projectCreator"]}
    finally:
        srv.stop()


# ---- bad input --------------------------------------------------------------------------------


def test_unknown_projects_misplaced_roles_and_missing_rights_change_nothing(lab: Lab) -> None:
    alice, bob = lab.alice, lab.bob
    before = lab.bindings()
    for call in (
        lambda: alice.set_project_roles("nope", "projectViewer", "user:bob"),
        lambda: alice.get_project_roles("nope"),
        lambda: alice.check_project("nope"),
        lambda: bob.create_repo("nope/x"),  # not found, rather than "not authorized"
        lambda: bob.create_pipeline(copy_spec("nope/x", "lab/raw")),
    ):
        with pytest.raises(NotFound, match=r"^project nope not found$"):
            call()
    misplaced = {
        "role projectViewer cannot be bound on a repo (only on the cluster or a project)": (
            lambda: alice.set_repo_roles("lab/raw", "projectViewer", "user:bob")
        ),
        "role projectCreator cannot be bound on a project (only on the cluster)": (
            lambda: alice.set_project_roles("lab", "projectCreator", "user:bob")
        ),
        "role clusterAdmin cannot be bound on a project": (
            lambda: alice.set_project_roles("lab", "repoReader,clusterAdmin", "user:bob")
        ),
        "invalid project name 'lab.x'": lambda: alice.set_project_roles("lab.x", "none", "bob"),
        "subject 'group:x'": lambda: alice.set_project_roles("lab", "projectViewer", "group:x"),
        "allClusterUsers names every caller": lambda: lab.root.get_auth_token("allClusterUsers"),
    }
    for message, call in misplaced.items():
        with pytest.raises(InvalidArgument) as exc:
            call()
        assert str(exc.value).startswith(message)
    assert lab.bindings() == before

    # without projectCreator (which root takes from every caller here) no project is made
    lab.root.set_cluster_roles("none", "allClusterUsers")
    with pytest.raises(
        PermissionDenied,
        match="user:bob is not authorized to create projects: needs projectCreator",
    ):
        bob.create_project("mine")
    assert names(lab.root.list_project()) == ["default", "lab", "vault"]

    # over HTTP each is a 4xx
    alice_token = lab.root.get_auth_token("user:alice")
    bearer = {"Authorization": f"Bearer {alice_token}"}
    with httpx.Client(transport=lab.srv.transport, base_url=lab.srv.url, headers=bearer) as h:
        assert h.get("/v1/auth/projects/nope").status_code == 404
        wrong = {"roles": "projectCreator", "subject": "user:bob"}
        assert h.put("/v1/auth/projects/lab", json=wrong).status_code == 400
        assert h.get("/v1/auth/projects/vault/check", params={"subject": "root"}).status_code == 403


# ---- the CLI --------------------------------------------------------------------------------


def test_cli_sets_gets_and_checks_roles_on_a_project(cli: Cli) -> None:
    """On the store itself, which acts as root (a cluster admin)."""
    cli("auth", "activate")
    cli("create", "project", "lab")
    cli("create", "repo", "raw", "--project", "lab")
    out = cli("auth", "set", "project", "lab", "projectViewer,repoReader", "user:bob").out
    assert out.split() == ["SUBJECT", "ROLES", "user:bob", "projectViewer,repoReader"]
    assert cli("auth", "get", "project", "lab", "-o", "json").json() == {
        "resource": "lab",
        "bindings": {"user:bob": ["projectViewer", "repoReader"]},
    }
    assert cli("auth", "check", "project", "lab", "user:bob").out.strip() == (
        "user:bob on project lab: roles projectViewer, repoReader; may read, list_repo"
    )
    assert cli("auth", "check", "repo", "raw", "user:bob", "--project", "lab").out.strip() == (
        "user:bob on lab/raw: roles repoReader; may read"
    )
    listed = [line.split() for line in cli("list", "project").out.strip().splitlines()]
    assert listed[0] == ["ACTIVE", "PROJECT", "ACCESS_LEVEL", "CREATED", "DESCRIPTION"]
    assert (listed[1][:3], listed[2][:2]) == (
        ["*", "default", "clusterAdmin"],
        ["lab", "clusterAdmin"],
    )
    assert "Roles: clusterAdmin" in cli("inspect", "project", "lab").out

    before = cli("auth", "get", "project", "lab", "-o", "json").out
    bad = [
        (2, "role projectViewer cannot be bound on a repo",
         ["auth", "set", "repo", "raw", "projectViewer", "user:bob", "--project", "lab"]),
        (2, "role projectCreator cannot be bound on a project",
         ["auth", "set", "project", "lab", "projectCreator", "user:bob"]),
        (3, "project nope not found", ["auth", "get", "project", "nope"]),
        (3, "project nope not found", ["auth", "check", "project", "nope"]),
    ]  # fmt: skip
    for code, message, args in bad:
        res = cli.fails(*args)
        assert (res.code, res.err.strip().startswith(f"error: {message}")) == (code, True), res.err
    assert cli("auth", "get", "project", "lab", "-o", "json").out == before
