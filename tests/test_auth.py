"""Auth of ``haathi serve``: off until activated; then every request names its caller by a
bearer token, and every operation needs a role (Pachyderm's ``repoReader`` < ``repoWriter`` <
``repoOwner`` on a repo, ``clusterAdmin`` on the cluster). Runs on both backend pairs."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import haathi
from haathi.api.access import AUTH_OFF_TRUSTED_S
from haathi.client import Client
from haathi.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from haathi.meta.schema import auth_tokens
from haathi.models.info import JobState
from haathi.server.serve import Server

COPY = {
    "pipeline": {"name": "copy"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"cmd": ["sh", "-c", "cp /pfs/data/* /pfs/out/"]},
}


class Team:
    """A server with auth on: root, and clients for user:alice (owns ``data`` and the
    pipeline ``copy``) and user:bob (no roles)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        with haathi.connect(self.url) as anon:
            self.root_token = anon.auth_activate()
        self.root = self.connect(self.root_token)
        self.alice = self.user("alice")
        self.bob = self.user("bob")
        self.alice.create_repo("data")
        self.alice.put_file("data@master:/x.csv", b"a,b\n1,2\n")
        self.alice.create_pipeline(COPY)

    def connect(self, token: str | None) -> Client:
        return haathi.connect(self.url, token=token)

    def user(self, name: str) -> Client:
        return self.connect(self.root.get_auth_token(f"user:{name}"))

    def close(self) -> None:
        for c in (self.root, self.alice, self.bob):
            c.close()


@pytest.fixture
def team(server: Server) -> Iterator[Team]:
    t = Team(server)
    yield t
    t.close()


# activation and tokens ---------------------------------------------------------------------


def test_auth_is_off_until_activated_and_the_root_token_is_shown_once(server: Server) -> None:
    with haathi.connect(server.url) as anon:
        anon.create_repo("open")  # no token needed while auth is off
        with pytest.raises(FailedPrecondition, match="not activated"):
            anon.whoami()
        root_token = anon.auth_activate()
        with pytest.raises(Unauthenticated, match="log in"):
            anon.list_repo()
        with pytest.raises(Unauthenticated):
            anon.auth_activate()
    with haathi.connect(server.url, token=root_token) as root:
        assert root.whoami() == {"subject": "haathi:root", "cluster_admin": True}
        assert [r.name for r in root.list_repo()] == ["open"]
        with pytest.raises(FailedPrecondition, match="already activated"):
            root.auth_activate()
    with (
        haathi.connect(server.url, token="0" * 64) as forged,
        pytest.raises(Unauthenticated, match="not valid"),
    ):
        forged.list_repo()


def test_activation_by_another_process_is_enforced_within_a_second(
    server: Server, store: Path
) -> None:
    """A server reads that auth is off at most once a second (requests while it is off read
    nothing for it); activation through the server itself takes effect at once (above)."""
    with haathi.connect(server.url) as anon:
        anon.create_repo("open")
        assert server.api.auth_known_off()
        with haathi.connect(str(store)) as other:  # another process on the same store
            other.auth_activate()
        deadline = time.monotonic() + AUTH_OFF_TRUSTED_S  # the server read "off" before this
        try:
            while True:
                sent = time.monotonic()
                anon.list_repo()  # still served while the server trusts what it read ...
                assert sent < deadline, "served open for too long"  # ... and no longer
        except Unauthenticated:
            pass
        with pytest.raises(Unauthenticated):
            anon.create_repo("later")
    assert [r.name for r in server.api.list_repo()] == ["open"]


def test_a_read_of_auth_off_begun_before_activation_is_not_trusted(server: Server) -> None:
    api = server.api
    generation = api.auth_off.generation()  # a request's read begins ...
    api.auth_activate()  # ... activation commits ...
    api.auth_off.seen_off(generation)  # ... and the read reports what it saw: dropped
    assert not api.auth_known_off()
    assert api.auth_active()


def test_tokens_are_stored_hashed(team: Team) -> None:
    robot = team.root.get_robot_token("ci")
    with team.server.api.pfs.db.read() as conn:
        rows = conn.execute(select(auth_tokens)).all()
    stored = {r.token_hash: r.subject for r in rows}
    for token, subject in [(team.root_token, "haathi:root"), (robot, "robot:ci")]:
        assert stored[hashlib.sha256(token.encode()).hexdigest()] == subject
        assert all(token not in str(tuple(r)) for r in rows)


def test_robot_tokens_and_revocation(team: Team) -> None:
    token = team.root.get_robot_token("ci")
    with team.connect(token) as robot:
        assert robot.whoami()["subject"] == "robot:ci"
        team.alice.set_repo_roles("data", "repoReader", "robot:ci")
        assert robot.get_file("data@master:/x.csv") == b"a,b\n1,2\n"
        assert team.root.revoke_token(token) == 1
        with pytest.raises(Unauthenticated, match="not valid"):
            robot.whoami()
    with pytest.raises(PermissionDenied, match="clusterAdmin"):
        team.alice.get_robot_token("mine")
    # every token of a subject; a user may revoke their own
    other = team.root.get_auth_token("user:bob")
    assert team.bob.revoke_token(subject="user:bob") == 2
    with team.connect(other) as c, pytest.raises(Unauthenticated):
        c.whoami()
    with pytest.raises(PermissionDenied):
        team.alice.revoke_token(subject="user:carol")


def test_a_token_with_a_ttl_expires(team: Team) -> None:
    # (a second-long token's first use may come after its second on a loaded machine: what
    # it may do before then is asked of an hour-long one, and its end of its stored row)
    lasting = team.root.get_auth_token("user:carol", ttl_s=3600)
    with team.connect(lasting) as carol:
        assert carol.whoami()["subject"] == "user:carol"
    short = team.root.get_auth_token("user:carol", ttl_s=1)
    with team.server.api.pfs.db.read() as conn:
        rows = conn.execute(select(auth_tokens).where(auth_tokens.c.expires_at.is_not(None)))
        ends = {r.token_hash: r.expires_at - r.created_at for r in rows}
    assert ends[hashlib.sha256(lasting.encode()).hexdigest()] == timedelta(hours=1)
    assert ends[hashlib.sha256(short.encode()).hexdigest()] == timedelta(seconds=1)
    with team.connect(short) as carol:
        time.sleep(1.2)
        with pytest.raises(Unauthenticated, match="expired"):
            carol.whoami()
    with pytest.raises(InvalidArgument):
        team.root.get_auth_token("user:carol", ttl_s=-1)


def test_bad_subjects_and_roles_are_refused(team: Team) -> None:
    for subject in ["group:x", "user:", "user:a b", "user:../x"]:
        with pytest.raises(InvalidArgument, match="subject"):
            team.alice.set_repo_roles("data", "repoReader", subject)
    with pytest.raises(InvalidArgument, match="unknown role"):
        team.alice.set_repo_roles("data", "repoBoss", "user:bob")
    with pytest.raises(InvalidArgument, match="cannot be bound on a repo"):
        team.alice.set_repo_roles("data", "clusterAdmin", "user:bob")
    assert team.alice.get_repo_roles("data").bindings["user:alice"] == ["repoOwner"]
    assert "user:bob" not in team.alice.get_repo_roles("data").bindings


# roles ---------------------------------------------------------------------------------------


@pytest.mark.every_backend
def test_each_repo_role_permits_what_it_names(team: Team) -> None:
    alice, bob = team.alice, team.bob
    # every caller sees default's repos listed (projectWriter there: allClusterUsers) ...
    assert [r.name for r in bob.list_repo()] == ["copy", "data"]
    # ... and reads only those it has a role on
    with pytest.raises(PermissionDenied, match="user:bob is not authorized to read repo data"):
        bob.get_file("data@master:/x.csv")
    assert bob.check_repo("data").to_dict() == {
        "subject": "user:bob",
        "repo": "data",
        "roles": [],
        "permissions": [],
    }

    alice.set_repo_roles("data", "repoReader", "user:bob")
    assert bob.get_file("data@master:/x.csv") == b"a,b\n1,2\n"
    with pytest.raises(PermissionDenied, match="needs repoWriter"):
        bob.put_file("data@master:/y", b"y")

    alice.set_repo_roles("data", "repoWriter", "user:bob")
    bob.put_file("data@master:/y", b"y")
    assert bob.inspect_commit("data@master").author == "user:bob"
    with pytest.raises(PermissionDenied, match="needs repoOwner"):
        bob.set_repo_roles("data", "repoOwner", "user:bob")
    with pytest.raises(PermissionDenied, match="needs repoOwner"):
        bob.delete_repo("data", force=True)

    alice.set_repo_roles("data", "none", "user:bob")
    with pytest.raises(PermissionDenied):
        bob.inspect_repo("data")
    assert bob.check_repo("data").roles == []
    assert alice.check_repo("data", "user:bob").permissions == []


def test_a_repo_creator_owns_it_and_cluster_admins_may_do_everything(team: Team) -> None:
    team.bob.create_repo("bobs")
    assert team.bob.get_repo_roles("bobs").bindings == {"user:bob": ["repoOwner"]}
    with pytest.raises(PermissionDenied):
        team.alice.list_branch("bobs")
    with pytest.raises(PermissionDenied, match="clusterAdmin"):
        team.alice.set_cluster_roles("clusterAdmin", "user:alice")
    team.root.set_cluster_roles("clusterAdmin", "user:alice")
    assert team.root.get_cluster_roles().bindings == {
        "allClusterUsers": ["projectCreator"],  # every caller's, from activation
        "user:alice": ["clusterAdmin"],
    }
    assert team.alice.whoami()["cluster_admin"] is True
    assert team.alice.list_branch("bobs") == []
    team.alice.delete_repo("bobs")
    # a new repo of the same name starts with no bindings but its creator's
    team.alice.create_repo("bobs")
    assert team.alice.get_repo_roles("bobs").bindings == {"user:alice": ["repoOwner"]}


def test_a_commit_names_its_author(team: Team) -> None:
    assert team.alice.inspect_commit("data@master").author == "user:alice"
    assert [c.author for c in team.alice.list_commit("copy@master")] == [None]


def test_the_embedded_client_is_unrestricted(team: Team, store: Path) -> None:
    with haathi.connect(str(store)) as local:
        assert local.whoami() == {"subject": "haathi:root", "cluster_admin": True}
        assert local.get_file("data@master:/x.csv") == b"a,b\n1,2\n"


# pipelines -----------------------------------------------------------------------------------


@pytest.mark.every_backend
def test_a_pipeline_runs_as_its_own_identity_and_needs_read_on_its_inputs(team: Team) -> None:
    alice = team.alice
    assert alice.get_repo_roles("data").bindings["pipeline:copy"] == ["repoReader"]
    assert alice.get_repo_roles("copy").bindings == {
        "pipeline:copy": ["repoWriter"],
        "user:alice": ["repoOwner"],
    }
    assert alice.get_file("copy@master:/x.csv") == b"a,b\n1,2\n"

    alice.set_repo_roles("data", "none", "pipeline:copy")
    alice.put_file("data@master:/z.csv", b"z")
    job = alice.list_job("copy")[0]
    assert job.state == JobState.UNRUNNABLE
    assert job.reason == "pipeline:copy is not authorized to read input repo data: needs repoReader"
    assert [f.path for f in alice.list_file("copy@master:/")] == ["/x.csv"]

    alice.set_repo_roles("data", "repoReader", "pipeline:copy")
    alice.put_file("data@master:/w.csv", b"w")
    assert alice.list_job("copy")[0].state == JobState.SUCCESS
    assert [f.path for f in alice.list_file("copy@master:/")] == ["/w.csv", "/x.csv", "/z.csv"]


def test_creating_a_pipeline_needs_read_on_its_inputs(team: Team) -> None:
    spec = dict(COPY, pipeline={"name": "bobcopy"})
    with pytest.raises(PermissionDenied, match="read repo data"):
        team.bob.create_pipeline(spec)
    assert "bobcopy" not in [r.name for r in team.root.list_repo()]
    team.alice.set_repo_roles("data", "repoReader", "user:bob")
    with pytest.raises(PermissionDenied, match="write repo copy"):  # an update needs write
        team.bob.update_pipeline(COPY)


def test_pipelines_made_before_activation_keep_running(server: Server) -> None:
    with haathi.connect(server.url) as anon:
        anon.create_repo("data")
        anon.create_pipeline(COPY)
        root_token = anon.auth_activate()
    with haathi.connect(server.url, token=root_token) as root:
        root.put_file("data@master:/x.csv", b"x")
        assert root.list_job("copy")[0].state == JobState.SUCCESS
        assert root.get_file("copy@master:/x.csv") == b"x"


def test_deactivating_drops_every_token_and_binding(team: Team) -> None:
    with pytest.raises(PermissionDenied):
        team.alice.auth_deactivate()
    team.root.auth_deactivate()
    with team.connect(None) as anon:
        assert sorted(r.name for r in anon.list_repo()) == ["copy", "data"]
        with pytest.raises(FailedPrecondition, match="not activated"):
            anon.get_repo_roles("data")


# what the server tells a caller about itself, and running jobs -----------------------------


def test_only_cluster_admins_see_where_the_store_lives(team: Team, store: Path) -> None:
    """The store's directory, database URL and object store are for cluster admins; any other
    caller learns where its code runs and where the S3 gateway listens."""
    shown = team.root.store_info()
    assert {"address", "metadata", "objects"} <= set(shown)
    for user in (team.alice, team.bob):
        assert set(user.store_info()) == {"sandbox", "note", "s3_gateway", "server"}
        cluster = user.inspect_cluster()
        assert cluster["s3_endpoint"] == team.server.s3_url
        assert set(cluster["store"]) == {"sandbox", "note"}
    bob = team.root.get_auth_token("user:bob")
    r = httpx.get(f"{team.url}/v1/store", headers={"Authorization": f"Bearer {bob}"})
    assert r.status_code == 200 and str(store) not in r.text and "sqlite" not in r.text
    team.root.set_cluster_roles("clusterAdmin", "user:bob")
    assert {"address", "metadata", "objects"} <= set(team.bob.store_info())


@pytest.mark.every_backend
def test_running_jobs_runs_and_names_only_those_the_caller_may_read(store: Path) -> None:
    """``POST /v1/jobs/run`` (what a remote write calls to wait for its jobs) runs and reports
    only the jobs of pipelines the caller may read; a cluster admin runs the whole queue.
    Here no background runner takes the jobs, so who ran what shows."""
    server = Server.for_store(str(store), {}, "127.0.0.1:0", run_worker=False).start()
    team = Team(server)
    carol = team.user("carol")
    try:
        with haathi.connect(team.url, token=team.root.get_auth_token("user:alice"),
                            run_jobs=False) as alice_queues:  # fmt: skip
            alice_queues.put_file("data@master:/y.csv", b"y")  # queues copy's job, runs none
        [queued] = [j for j in team.alice.list_job("copy") if j.state == JobState.CREATED]

        assert team.bob.run_jobs().to_dict() == {"ran": {}, "waiting": {}}
        assert team.alice.inspect_job(f"copy@{queued.id}").state == JobState.CREATED

        carol.create_repo("notes")  # carol's remote writes run her jobs, and only hers
        carol.create_pipeline({
            "pipeline": {"name": "mine"}, "input": {"pfs": {"repo": "notes", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "cp /pfs/notes/* /pfs/out/"]},
        })  # fmt: skip
        carol.put_file("notes@master:/n.txt", b"n")
        assert carol.get_file("mine@master:/n.txt") == b"n"
        assert all(k.startswith("mine@") for k in carol.last_run.ran)  # type: ignore[union-attr]
        assert team.alice.inspect_job(f"copy@{queued.id}").state == JobState.CREATED

        assert f"copy@{queued.id}" in team.alice.run_jobs().ran
        assert team.alice.get_file("copy@master:/y.csv") == b"y"
        with haathi.connect(team.url, token=team.root.get_auth_token("user:alice"),
                            run_jobs=False) as alice_queues:  # fmt: skip
            alice_queues.put_file("data@master:/z.csv", b"z")
        assert any(k.startswith("copy@") for k in team.root.run_jobs().ran)  # an admin's run
    finally:
        carol.close()
        team.close()
        server.stop()


# every route ---------------------------------------------------------------------------------

# What each route of the OpenAPI spec is called with in the walk: path parameters name real
# objects (so a refusal is about the role, not a missing object), and bodies are valid.
PATH_VALUES = {
    "repo": "data",
    "ref": "master",
    "branch": "master",
    "path": "x.csv",
    "kind": "commit",
    "name": "copy",
    "pipeline": "copy",
    "project": "default",
}
QUERY: dict[str, dict[str, Any]] = {
    "/v1/repos/{repo}/commits/{ref}/glob": {"pattern": "*"},
    "/v1/lineage": {"target": "copy@master:/x.csv"},
    "/v1/repos/{repo}/commits/{ref}/wait": {"timeout": 0},
}
BODIES: dict[str, Any] = {
    "POST /v1/repos": {"name": "data"},
    "POST /v1/transactions/{transaction}/requests": {"op": "create_repo", "repo": "evil"},
    "PATCH /v1/repos/{repo}": {"description": "changed"},
    "POST /v1/repos/{repo}/branches": {"branch": "dev", "head": "master"},
    "POST /v1/repos/{repo}/commits/{ref}/start": {},
    "POST /v1/repos/{repo}/commits/{ref}/finish": {},
    "POST /v1/repos/{repo}/metadata/{kind}/{ref}": {"action": "add", "items": ["k=v"]},
    "POST /v1/fsck": {},
    "POST /v1/gc": {},
    "POST /v1/pipelines": {"spec": COPY, "update": True},
    "POST /v1/pipelines/validate": {"spec": COPY},
    "POST /v1/pipelines/preview": {"spec": COPY},
    "POST /v1/reproduce": {"target": "copy@master:/x.csv"},
    "POST /v1/reproduce/commit": {"commit": "copy@master"},
    "POST /v1/auth/tokens": {"subject": "user:mallory"},
    "POST /v1/auth/robot-tokens": {"robot": "mallory"},
    "POST /v1/auth/revoke": {"subject": "user:alice"},
    "PUT /v1/auth/repos/{repo}": {"roles": "repoOwner", "subject": "user:bob"},
    "PUT /v1/auth/projects/{project}": {"roles": "projectOwner", "subject": "user:bob"},
    "PUT /v1/auth/cluster": {"roles": "clusterAdmin", "subject": "user:bob"},
    "POST /v1/secrets": {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}},
    "POST /v1/projects": {"name": "default"},
    "PATCH /v1/projects/{project}": {"description": "changed"},
}
# Routes any authenticated caller may use (so a caller without roles is not refused), and what
# they answer bob: his own identity and access, empty lists, checks of what he sends, or an
# error that is not about roles. Every other route must answer him 403.
OPEN_TO_ANY_CALLER = {
    "GET /v1/repos": 200,
    "POST /v1/repos": 409,
    "GET /v1/store": 200,
    "GET /v1/pipelines": 200,
    "POST /v1/pipelines/validate": 200,
    "GET /v1/jobs": 200,
    "POST /v1/jobs/queue": 200,
    "POST /v1/jobs/run": 200,
    "POST /v1/auth/activate": 412,
    "GET /v1/auth/whoami": 200,
    "GET /v1/auth/repos/{repo}/check": 200,
    "GET /v1/auth/projects/{project}": 200,  # default's: every caller is projectWriter there
    "GET /v1/auth/projects/{project}/check": 200,
    "GET /v1/projects": 200,  # projects are listed to every caller (as Pachyderm's)
    "GET /v1/projects/{project}": 200,
    "POST /v1/projects": 409,  # any caller may create a project (not one that exists)
    # any caller may make transactions of its own; alice's does not exist for bob
    "GET /v1/transactions": 200,
    "POST /v1/transactions": 201,
    "GET /v1/transactions/{transaction}": 404,
    "DELETE /v1/transactions/{transaction}": 404,
    "POST /v1/transactions/{transaction}/requests": 404,
    "POST /v1/transactions/{transaction}/finish": 404,
}


# What those open routes may tell bob, beyond empty lists: nothing of the store's whereabouts,
# nothing of jobs he may not read.
OPEN_ANSWERS: dict[str, Any] = {
    "GET /v1/store": lambda body: set(body) == {"sandbox", "note", "s3_gateway"},
    "POST /v1/jobs/run": lambda body: body == {"ran": {}, "waiting": {}},
    "GET /v1/projects": lambda body: [p["name"] for p in body] == ["default"],
    # default's repos and pipelines are listed to every caller (allClusterUsers is its
    # projectWriter), not read: the routes that read them answer 403
    "GET /v1/repos": lambda body: [r["name"] for r in body] == ["copy", "data"],
    "GET /v1/pipelines": lambda body: [p["name"] for p in body] == ["copy"],
}


def _routes(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{url}/openapi.json").json()
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item]


def _request(h: httpx.Client, method: str, path: str, ids: dict[str, str]) -> httpx.Response:
    values = dict(PATH_VALUES, **ids)
    url = re.sub(r"\{(\w+)(:path)?\}", lambda m: values[m.group(1)], path)
    body = BODIES.get(f"{method} {path}")
    if path.endswith("/modify"):  # a framed upload: one put of b"evil" at /evil
        header = b'{"description": "", "ops": [{"op": "put", "path": "/evil", "append": false}]}'
        content = b"%d\n" % len(header) + header + (4).to_bytes(4, "big") + b"evil" + bytes(4)
        return h.request(method, url, content=content)
    return h.request(method, url, json=body, params=QUERY.get(path))


def _state(root: Client, server: Server) -> Any:
    """Everything a refused request must leave as it was."""
    repos = root.list_repo()
    with server.api.pfs.db.read() as conn:
        tokens = sorted(r.token_hash for r in conn.execute(select(auth_tokens)).all())
    return (
        [r.to_dict() for r in repos],
        {r.name: [b.to_dict() for b in root.list_branch(r.name)] for r in repos},
        {r.name: [c.to_dict() for c in root.list_commit(r.name)] for r in repos},
        {r.name: root.get_repo_roles(r.name).bindings for r in repos},
        root.get_cluster_roles().bindings,
        root.get_project_roles("default").bindings,
        [p.to_dict() for p in root.list_project()],
        [p.to_dict() for p in root.list_pipeline()],
        [j.to_dict() for j in root.list_job()],
        tokens,
    )


def test_every_route_refuses_no_token_and_a_caller_without_the_role(team: Team) -> None:
    job = team.alice.list_job("copy")[0]
    datum = team.alice.list_datum(f"copy@{job.id}")[0]
    ids = {"job": job.id, "commit_id": job.id, "datum": datum.id,
           "transaction": team.alice.start_transaction().id}  # fmt: skip
    bob_token = team.root.get_auth_token("user:bob")
    before = _state(team.root, team.server)
    routes = _routes(team.url)
    assert len(routes) > 60
    open_seen = set()
    with (
        httpx.Client(base_url=team.url, timeout=30) as anon,
        httpx.Client(
            base_url=team.url, timeout=30, headers={"Authorization": f"Bearer {bob_token}"}
        ) as bob,
    ):
        for method, path in routes:
            key = f"{method} {path}"
            r = _request(anon, method, path, ids)
            assert r.status_code == 401, (key, r.status_code, r.text)
            assert r.json()["code"] == "unauthenticated"
            r = _request(bob, method, path, ids)
            if key in OPEN_TO_ANY_CALLER:
                open_seen.add(key)
                assert r.status_code == OPEN_TO_ANY_CALLER[key], (key, r.status_code, r.text)
                if r.status_code == 200 and isinstance(r.json(), list) and key not in OPEN_ANSWERS:
                    assert r.json() == [], key  # nothing bob may not read
                if key in OPEN_ANSWERS:
                    assert OPEN_ANSWERS[key](r.json()), (key, r.json())
            else:
                assert r.status_code == 403, (key, r.status_code, r.text)
                assert r.json()["code"] == "permission_denied"
    assert open_seen == set(OPEN_TO_ANY_CALLER)
    assert _state(team.root, team.server) == before


# the CLI -------------------------------------------------------------------------------------


def _haathi(url: str, config: Path, *args: str, input: str | None = None) -> Any:
    env = dict(os.environ, HAATHI_ADDRESS=url, HAATHI_CONFIG_DIR=str(config), COLUMNS="200")
    env.pop("HAATHI_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "haathi", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_activate_login_whoami_logout(server: Server, tmp_path: Path) -> None:
    url, cfg = server.url, tmp_path / "cfg"
    r = _haathi(url, cfg, "auth", "activate")
    assert r.returncode == 0, r.stderr
    root_token = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{64}", root_token)
    assert "root" in _haathi(url, cfg, "auth", "whoami").stdout  # activate logs root in
    alice = _haathi(url, cfg, "auth", "get-auth-token", "alice").stdout.strip()
    robot = _haathi(url, cfg, "auth", "get-robot-token", "ci", "-o", "json").stdout
    assert re.search(r'"token": "[0-9a-f]{64}"', robot)

    r = _haathi(url, cfg, "auth", "login", input=alice + "\n")
    assert r.returncode == 0 and "as user:alice" in r.stdout, r.stderr
    saved = cfg / "tokens.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert _haathi(url, cfg, "auth", "whoami").stdout.strip() == "You are logged in as user:alice"
    assert _haathi(url, cfg, "create", "repo", "data").returncode == 0
    r = _haathi(url, cfg, "auth", "get", "repo", "data", "-o", "json")
    assert '"user:alice": [\n      "repoOwner"' in r.stdout
    r = _haathi(url, cfg, "auth", "set", "repo", "data", "repoReader", "user:bob")
    assert "user:bob" in r.stdout and "repoReader" in r.stdout
    assert "may read, write, own" in _haathi(url, cfg, "auth", "check", "repo", "data").stdout
    r = _haathi(url, cfg, "inspect", "cluster")  # the store's whereabouts: admins only
    assert r.returncode == 0 and server.s3_url in r.stdout and "metadata" not in r.stdout
    r = _haathi(url, cfg, "run", "worker")
    assert r.returncode == 6 and "runs jobs itself" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = _haathi(url, cfg, "auth", "get", "cluster")
    assert r.returncode == 7 and r.stderr.strip().startswith("error: user:alice is not author")

    assert "Logged out" in _haathi(url, cfg, "auth", "logout").stdout
    r = _haathi(url, cfg, "list", "repo")
    assert r.returncode == 8
    assert r.stderr.strip() == "error: auth is on: log in (haathi auth login) or pass a token"
    r = _haathi(url, cfg, "auth", "login", "--token", "nope")
    assert r.returncode == 8 and "not valid" in r.stderr and "Traceback" not in r.stderr
    r = _haathi(url, cfg, "auth", "revoke", "--token", alice)
    assert r.returncode == 8  # logged out: no token
    env_token = dict(os.environ, HAATHI_TOKEN=root_token)
    r = subprocess.run(
        [sys.executable, "-m", "haathi", "--address", url, "auth", "revoke", "--token", alice],
        capture_output=True,
        text=True,
        env=env_token,
        timeout=120,
    )
    assert r.returncode == 0 and "Revoked 1 token." in r.stdout, r.stderr


def test_no_warning_on_an_open_bind_once_auth_is_on(team: Team) -> None:
    api = team.server.api
    s = Server(api, "0.0.0.0:0")
    try:
        assert s.warning is None
    finally:
        s.sock.close()
