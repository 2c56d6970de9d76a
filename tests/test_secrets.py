"""Secrets: ``create/list/inspect/delete secret`` (a Kubernetes Secret, as Pachyderm takes it)
and ``transform.secrets``, which hand them to user code as environment variables or files.

What a user can rely on, as these tests show it:

- user code gets the values it names, in every sandbox: bwrap (the host's), a container
  (podman), and ``none`` for variables; files are read-only;
- a value is never shown: not in ``inspect secret`` or ``list secret``, not in ``inspect
  pipeline``, job or datum records (a secret variable shows as ``***``), and not in logs (user
  code that prints it prints ``***``);
- at rest it is encrypted: the plaintext is in no byte of the store (the SQLite file, or a
  dump of the PostgreSQL database); the key is ``<store>/secrets.key`` (0600) or the file the
  store's config names, which user code cannot read; a wrong or missing key file is a clear
  error, never garbage;
- bad input is one line and changes nothing; a pipeline naming a secret (or key) that does not
  exist is refused at create, and a job of a pipeline whose secret was deleted since fails
  saying which;
- with auth on, only cluster admins manage secrets or create pipelines that use them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

import haathi
from haathi.client import Client
from haathi.config import store_config
from haathi.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from haathi.meta.database import Database
from haathi.models.info import JobState
from haathi.models.secret import JobSecrets, SecretMount, parse_secret, redact
from haathi.pps.transform_spec import Transform
from haathi.pps.worker import DatumSetTask
from haathi.server.serve import Server
from loopback.servers import pg_bin
from tests.conftest import Cli
from tests.dask_cluster import DaskCluster
from tests.images import BusyboxImage
from tests.test_store_identity import SINCE_0010

PASSWORD = "correcthorsebatterystaple"
USER = "alice-in-db"
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db-creds", "creationTimestamp": None},
    "type": "Opaque",
    "data": {"password": base64.b64encode(PASSWORD.encode()).decode()},
    "stringData": {"user": USER},
}
# user code that proves it read both values (their hashes go to /pfs/out), prints them (the
# log must show *** instead) and tries to write where the files are (read-only)
SCRIPT = """
printf %s "$DB_PASSWORD" | sha256sum | cut -c1-64 > /pfs/out/env.sha
sha256sum < /secrets/db/password | cut -c1-64 > /pfs/out/file.sha
ls /secrets/db > /pfs/out/keys
echo "password is $DB_PASSWORD"
cat /secrets/db/user
touch /secrets/db/new 2>/dev/null && echo yes > /pfs/out/writable
true
"""
READER = {
    "pipeline": {"name": "reader"},
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {
        "cmd": ["sh", "-c", SCRIPT],
        "secrets": [
            {"name": "db-creds", "env_var": "DB_PASSWORD", "key": "password"},
            {"name": "db-creds", "mount_path": "/secrets/db"},
        ],
    },
}


def sha(value: str) -> bytes:
    return hashlib.sha256(value.encode()).hexdigest().encode() + b"\n"


def spec_with(**transform: Any) -> dict[str, Any]:
    """READER with its transform's fields replaced."""
    return {**READER, "transform": {**READER["transform"], **transform}}


def store_bytes(store: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(store.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def pg_dump(store: Path) -> bytes:
    """Every row of the store's PostgreSQL database, as ``pg_dump`` writes them."""
    url = store_config(str(store)).db_url
    return subprocess.run(
        [pg_bin("pg_dump"), "--dbname", url], capture_output=True, check=True
    ).stdout


def newest_job(c: Client, pipeline: str) -> Any:
    return c.list_job(pipeline)[0]


# ---- the whole path, in every shape ------------------------------------------------------


@pytest.mark.every_shape
def test_a_pipeline_reads_a_secret_as_env_and_as_a_file_and_the_value_is_shown_nowhere(
    client: Client, store: Path, backend: str
) -> None:
    info = client.create_secret(SECRET)
    assert (info.name, info.type, info.keys) == ("db-creds", "Opaque", ("password", "user"))
    client.create_repo("data")
    client.put_file("data@master:/a.txt", b"a")
    client.create_pipeline(READER)

    job = newest_job(client, "reader")
    assert job.state == JobState.SUCCESS, (job.reason, client.logs("reader")[1])
    assert job.context["sandbox"] == "bwrap"
    assert client.get_file("reader@master:/env.sha") == sha(PASSWORD)
    assert client.get_file("reader@master:/file.sha") == sha(PASSWORD)
    assert client.get_file("reader@master:/keys") == b"password\nuser\n"
    assert [f.path for f in client.list_file("reader@master:/")] == [
        "/env.sha",
        "/file.sha",
        "/keys",
    ]  # no /writable: the files are read-only

    logs = "".join(out for _, out in client.logs("reader")[1])
    assert "password is ***\n***" in logs
    datum = client.list_datum(f"reader@{job.id}")[0]
    assert datum.env["DB_PASSWORD"] == "***"
    shown = json.dumps(
        [
            client.inspect_pipeline("reader").to_dict(),
            [p.to_dict() for p in client.list_pipeline()],
            [j.to_dict() for j in client.list_job()],
            client.inspect_job(f"reader@{job.id}").to_dict(),
            client.inspect_datum(f"reader@{job.id}", datum.id).to_dict(),
            [d.to_dict() for d in client.list_datum(f"reader@{job.id}")],
            client.inspect_secret("db-creds").to_dict(),
            [s.to_dict() for s in client.list_secret()],
            client.logs("reader")[1],
            client.store_info(),
        ]
    )
    assert "db-creds" in shown
    for value in (PASSWORD, USER, SECRET["data"]["password"]):
        assert value not in shown

    client.close()
    assert stat.S_IMODE(os.stat(store / "secrets.key").st_mode) == 0o600
    rows = pg_dump(store) if backend == "s3pg" else b""
    for path, data in [*store_bytes(store), (Path("pg_dump"), rows)]:
        for value in (PASSWORD, USER):
            assert value.encode() not in data, path


def test_the_value_never_enters_the_sqlite_file_and_the_key_is_outside_it(
    client: Client, store: Path
) -> None:
    client.create_secret(SECRET)
    with Database(f"sqlite:///{store / 'meta.db'}").engine.connect() as conn:
        row = conn.execute(text("SELECT keys, key_id, nonce, ciphertext FROM secrets")).one()
    key = bytes.fromhex((store / "secrets.key").read_text())
    assert json.loads(row.keys) == ["password", "user"]
    assert len(row.nonce) == 12 and len(row.ciphertext) > len(PASSWORD) + len(USER)
    client.close()
    meta = b"".join(data for path, data in store_bytes(store) if path.name.startswith("meta.db"))
    assert key not in meta and key.hex().encode() not in meta
    assert PASSWORD.encode() not in meta and USER.encode() not in meta


# ---- Pachyderm's own tests ---------------------------------------------------------------


def test_yaml_secret(cli: Cli, tmp_path: Path) -> None:
    """``TestYAMLSecret`` (pps/cmds/cmds_test.go), with ``kubectl create secret generic`` a
    ``haathi create secret -f`` of the same Secret."""
    (tmp_path / "s.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: test-yaml-secret\n"
        "stringData:\n  my-key: my-value\n"
    )
    cli("create", "secret", "-f", "s.yaml")
    cli("create", "repo", "input")
    cli("put", "file", "input@master:/foo", "-f", "-", input=b"foo\n")
    pipeline = """
pipeline:
  name: pipeline
input:
  pfs:
    glob: /*
    repo: input
transform:
  cmd: [ /bin/bash ]
  stdin:
    - "env | grep MY_SECRET >/pfs/out/vars"
  secrets:
    - name: test-yaml-secret
      env_var: MY_SECRET
      key: my-key
"""
    cli("create", "pipeline", "-f", "-", input=pipeline.encode())
    cli("wait", "commit", "pipeline@master")
    assert cli("get", "file", "pipeline@master:/vars").out == "MY_SECRET=my-value\n"


def test_secret_commands_show_names_types_and_keys_never_values(cli: Cli, tmp_path: Path) -> None:
    """``TestSecrets`` (pps/server/api_server_test.go): create, inspect, list, delete."""
    (tmp_path / "s.json").write_text(json.dumps(SECRET))
    assert cli("create", "secret", "-f", "s.json").out == ""
    listed = cli("list", "secret").out.splitlines()
    assert listed[0].split() == ["NAME", "TYPE", "CREATED"]
    assert listed[1].split()[:2] == ["db-creds", "Opaque"]
    inspected = cli("inspect", "secret", "db-creds").out
    assert inspected.splitlines()[0].split() == ["NAME", "TYPE", "CREATED", "KEYS"]
    assert "password, user" in inspected
    as_json = cli("inspect", "secret", "db-creds", "-o", "json").json()
    assert set(as_json) == {"name", "type", "keys", "created"}
    assert as_json["keys"] == ["password", "user"]
    assert [s["name"] for s in cli("list", "secrets", "-o", "json").json()] == ["db-creds"]
    for out in (listed, inspected, as_json):
        assert PASSWORD not in str(out) and USER not in str(out)
    cli("delete", "secret", "db-creds")
    assert cli("list", "secret", "-o", "json").json() == []
    assert cli.fails("inspect", "secret", "db-creds").code == NotFound.exit_code


def test_pipeline_with_secret_without_secret_and_with_missing_key(client: Client) -> None:
    """``TestPipelineWithSecret``, ``TestPipelineWithoutSecrets`` and
    ``TestPipelineWithMissingSecret`` (pps/cmds/cmds_realenv_test.go): a pipeline whose secret
    or key does not exist is refused, and nothing is created."""
    client.create_repo("data")
    uses = spec_with(
        cmd=["sh", "-c", "cp -rp /pfs/data/ /pfs/out"],
        secrets=[{"name": "supersecret", "env_var": "PASSWORD", "key": "PASSWORD"}],
    )
    with pytest.raises(NotFound, match="missing secret supersecret"):
        client.create_pipeline(uses)
    client.create_secret(
        {"metadata": {"name": "supersecret"}, "stringData": {"NOTPASSWORD": PASSWORD}}
    )
    with pytest.raises(NotFound, match="secret supersecret missing key PASSWORD"):
        client.create_pipeline(uses)
    assert client.list_pipeline() == []
    client.delete_secret("supersecret")
    client.create_secret({"metadata": {"name": "supersecret"}, "stringData": {"PASSWORD": "x"}})
    client.create_pipeline(uses)
    assert newest_job(client, "reader").state == JobState.SUCCESS


def test_a_job_whose_secret_was_deleted_fails_saying_which(client: Client) -> None:
    """``TestMissingSecretFailure`` (pachyderm_test.go): the job fails with the reason (where
    Pachyderm's pipeline goes CRASHING); once the secret is back, the next job runs."""
    client.create_secret(SECRET)
    client.create_repo("data")
    client.put_file("data@master:/a.txt", b"a")
    client.create_pipeline(READER)
    client.delete_secret("db-creds")
    client.put_file("data@master:/a.txt", b"b")
    job = newest_job(client, "reader")
    assert job.state == JobState.FAILURE
    assert job.reason is not None and "secret db-creds not found" in job.reason
    client.create_secret(SECRET)
    client.put_file("data@master:/a.txt", b"c")
    assert newest_job(client, "reader").state == JobState.SUCCESS


# ---- bad input -----------------------------------------------------------------------------

BAD_SECRETS = {
    "not JSON": ('{"kind": "Secret",', "invalid JSON at line 1", InvalidArgument),
    "not YAML": ("kind: [Secret\n", "invalid YAML", InvalidArgument),
    "a list": ("[1, 2]", "a secret is a JSON object", InvalidArgument),
    "another kind": ('{"kind": "ConfigMap", "metadata": {"name": "s"}}', "kind must be 'Secret'",
                     InvalidArgument),
    "no name": ('{"kind": "Secret", "metadata": {}}', "metadata.name is required",
                InvalidArgument),
    "a bad name": ('{"metadata": {"name": "Bad_Name"}}', "metadata.name 'Bad_Name' is invalid",
                   InvalidArgument),
    "bad base64": ('{"metadata": {"name": "s"}, "data": {"k": "n0t*base64"}}',
                   "data.k is not valid base64", InvalidArgument),
    "a bad key": ('{"metadata": {"name": "s"}, "stringData": {"a/b": "v"}}', "key 'a/b' is invalid",
                  InvalidArgument),
    "a value not a string": ('{"metadata": {"name": "s"}, "stringData": {"k": 1}}',
                             "stringData.k must be a string", InvalidArgument),
    "a typo": ('{"metadata": {"name": "s"}, "stringdata": {"k": "v"}}',
               "unsupported field 'stringdata'", InvalidArgument),
    "another suite": ('{"metadata": {"name": "s", "labels": {"suite": "x"}}}',
                      "invalid suite label", InvalidArgument),
    "too large": (json.dumps({"metadata": {"name": "s"}, "stringData": {"k": "x" * (1 << 20)}}),
                  "too large", InvalidArgument),
}  # fmt: skip


@pytest.mark.parametrize(("doc", "message", "error"), BAD_SECRETS.values(), ids=list(BAD_SECRETS))
def test_a_bad_secret_is_one_line_and_creates_nothing(
    cli: Cli, tmp_path: Path, doc: str, message: str, error: type[Exception]
) -> None:
    (tmp_path / "bad.json").write_text(doc)
    res = cli.fails("create", "secret", "-f", "bad.json")
    assert message in res.err and res.code == InvalidArgument.exit_code
    assert cli("list", "secret", "-o", "json").json() == []


def test_bad_secrets_over_http_are_4xx_with_the_same_error(client: Client) -> None:
    with pytest.raises(InvalidArgument, match=r"data\.k is not valid base64"):
        client.create_secret({"metadata": {"name": "s"}, "data": {"k": "%%%"}})
    client.create_secret(SECRET)
    with pytest.raises(AlreadyExists, match="secret db-creds already exists"):
        client.create_secret(SECRET)
    with pytest.raises(NotFound, match="secret nope not found"):
        client.inspect_secret("nope")
    with pytest.raises(NotFound, match="secret nope not found"):
        client.delete_secret("nope")
    assert [s.name for s in client.list_secret()] == ["db-creds"]


def test_an_error_never_quotes_a_value() -> None:
    for doc in (
        {"metadata": {"name": "s"}, "data": {"k": PASSWORD + "*"}},
        {"metadata": {"name": "s"}, "data": {"k": 12345678}},
    ):
        with pytest.raises(InvalidArgument) as raised:
            parse_secret(doc)
        assert PASSWORD not in str(raised.value) and "12345678" not in str(raised.value)


BAD_REFS = {
    "env_var without key": ([{"name": "db-creds", "env_var": "P"}],
                            "secret db-creds has env_var set but is missing key"),
    "neither env_var nor mount_path": ([{"name": "db-creds", "key": "password"}],
                                       "needs env_var (with key) or mount_path"),
    "a bad variable name": ([{"name": "db-creds", "env_var": "A=B", "key": "password"}],
                            "is not a variable name"),
    "a relative mount_path": ([{"name": "db-creds", "mount_path": "secrets"}],
                              "must be an absolute directory path"),
    "a mount over /pfs": ([{"name": "db-creds", "mount_path": "/pfs/out/s"}],
                          "which the sandbox provides"),
    "one variable twice": ([{"name": "db-creds", "env_var": "P", "key": "password"},
                            {"name": "db-creds", "env_var": "P", "key": "user"}],
                           "env_var P is given twice"),
    "a bad secret name": ([{"name": "DB", "mount_path": "/s"}], "is invalid"),
    "not a list": ({"name": "db-creds"}, "transform.secrets must be a list"),
}  # fmt: skip


@pytest.mark.parametrize(("refs", "message"), BAD_REFS.values(), ids=list(BAD_REFS))
def test_a_bad_transform_secrets_is_refused_by_name(
    cli: Cli, tmp_path: Path, refs: Any, message: str
) -> None:
    (tmp_path / "p.json").write_text(json.dumps(spec_with(secrets=refs)))
    res = cli.fails("validate", "pipeline", "-f", "p.json")
    assert message in res.err and res.code == InvalidArgument.exit_code


def test_a_secret_variable_may_not_also_be_in_transform_env(client: Client) -> None:
    client.create_secret(SECRET)
    client.create_repo("data")
    with pytest.raises(InvalidArgument, match=r"DB_PASSWORD is also set in transform\.env"):
        client.create_pipeline(spec_with(env={"DB_PASSWORD": "x"}))
    assert client.list_pipeline() == []


def test_pachyderms_example_specs_with_secrets_validate(cli: Cli, tmp_path: Path) -> None:
    """``examples/db/query.pipeline.json`` and ``examples/deferred-processing/.../
    branch-mover.pipeline.json``, as they are (camelCase keys, a cron input)."""
    query = {
        "pipeline": {"name": "query"},
        "description": "A pipeline that queries a MongoDB database located outside of Pachyderm.",
        "transform": {
            "image": "mongo",
            "cmd": ["/bin/bash"],
            "stdin": ["export uri=$(cat /tmp/mongosecret/uri)"],
            "secrets": [{"name": "mongosecret", "mountPath": "/tmp/mongosecret"}],
        },
        "input": {"cron": {"name": "tick", "spec": "@every 10s"}},
    }
    mover = {
        "pipeline": {"name": "branch-mover"},
        "transform": {
            "image": "pachyderm/pachctl:1.9.8",
            "cmd": ["sh"],
            "stdin": ["pachctl create branch edges_dp@master --head edges_dp@dev"],
            "secrets": [
                {"name": "pachyderm-user-secret", "envVar": "PACHYDERM_AUTH_TOKEN",
                 "key": "auth_token"}
            ],
        },
        "input": {"cron": {"name": "tick", "spec": "@every 1m", "overwrite": True}},
    }  # fmt: skip
    for doc in (query, mover):
        (tmp_path / "p.json").write_text(json.dumps(doc))
        checked = cli("validate", "pipeline", "-f", "p.json", "-o", "json").json()
        assert (
            checked[0]["spec"]["transform"]["secrets"][0]["name"]
            == doc["transform"]["secrets"][0]["name"]
        )


# ---- the key -------------------------------------------------------------------------------


def test_a_foreign_or_missing_key_file_is_refused_with_both_key_ids(store: Path) -> None:
    with haathi.connect(str(store)) as c:
        c.create_secret(SECRET)
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"a")
        c.create_pipeline(READER)
    key_file = store / "secrets.key"
    original = key_file.read_text()
    key_file.write_text(os.urandom(32).hex())
    with haathi.connect(str(store)) as c:
        with pytest.raises(
            FailedPrecondition, match=r"secrets were encrypted with key [0-9a-f]{16};"
        ):
            c.create_secret({"metadata": {"name": "other"}, "stringData": {"k": "v"}})
        c.put_file("data@master:/a.txt", b"b")
        job = newest_job(c, "reader")
        assert job.state == JobState.FAILURE and "holds key" in str(job.reason)
        key_file.unlink()
        with pytest.raises(FailedPrecondition, match=r"key file .* is missing"):
            c.create_secret({"metadata": {"name": "other"}, "stringData": {"k": "v"}})
        assert not key_file.exists()  # no new key made while secrets of the old one exist
        key_file.write_text(original)
        key_file.chmod(0o644)
        with pytest.raises(FailedPrecondition, match="may be read by other users"):
            c.create_secret({"metadata": {"name": "other"}, "stringData": {"k": "v"}})
        key_file.chmod(0o600)
        c.put_file("data@master:/a.txt", b"c")
        assert newest_job(c, "reader").state == JobState.SUCCESS


def test_a_configured_key_file_holds_the_key_and_user_code_cannot_read_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key file may be anywhere (here in the working directory, which user code sees
    while auth is off): it is never in the store, and never visible to user code, nor is the
    metadata holding the other secrets."""
    key_file = tmp_path / "keys" / "haathi.key"
    monkeypatch.setenv("HAATHI_SECRETS_KEY_FILE", str(key_file))
    monkeypatch.chdir(tmp_path)
    probe = (
        f"cat {key_file} > /pfs/out/key 2>/dev/null; cat {store}/meta.db > /pfs/out/db 2>/dev/null;"
        "env | grep -c OTHER_VALUE > /pfs/out/other; true"
    )
    with haathi.connect(str(store)) as c:
        c.create_secret(SECRET)
        c.create_secret({"metadata": {"name": "other"}, "stringData": {"o": "OTHER_VALUE"}})
        assert c.store_info()["secrets_key_file"] == str(key_file)
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"a")
        c.create_pipeline(spec_with(cmd=["sh", "-c", probe]))
        assert newest_job(c, "reader").state == JobState.SUCCESS
        assert c.get_file("reader@master:/key") == b""
        assert c.get_file("reader@master:/db") == b""
        assert c.get_file("reader@master:/other") == b"0\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (store / "secrets.key").exists()


# ---- sandboxes -----------------------------------------------------------------------------


def test_without_a_sandbox_variables_work_and_mounts_fail_the_job(store: Path) -> None:
    with haathi.connect(str(store), sandbox="none") as c:
        c.create_secret(SECRET)
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"a")
        env_only = 'printf %s "$DB_PASSWORD" | sha256sum | cut -c1-64 > /pfs/out/env.sha'
        c.create_pipeline(
            spec_with(cmd=["sh", "-c", env_only], secrets=READER["transform"]["secrets"][:1])
        )
        assert c.get_file("reader@master:/env.sha") == sha(PASSWORD)
        c.update_pipeline(READER)
        job = newest_job(c, "reader")
        assert job.state == JobState.FAILURE
        assert "secrets with mount_path need a sandbox" in str(job.reason)


@pytest.mark.slow  # a podman container
def test_a_container_gets_the_secret_as_env_and_files(
    store: Path, busybox_image: BusyboxImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAATHI_IMAGE_PULL_POLICY", "Never")
    with haathi.connect(str(store), runtime="podman") as c:
        c.create_secret(SECRET)
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"a")
        c.create_pipeline(spec_with(image="localhost/haathi-test/busybox:1", user="worker"))
        job = newest_job(c, "reader")
        assert job.state == JobState.SUCCESS, (job.reason, c.logs("reader")[1])
        assert "podman" in job.context["sandbox"] or job.context.get("runtime") == "podman"
        assert c.get_file("reader@master:/env.sha") == sha(PASSWORD)
        assert c.get_file("reader@master:/file.sha") == sha(PASSWORD)
        assert c.get_file("reader@master:/keys") == b"password\nuser\n"
        assert "writable" not in {f.path.strip("/") for f in c.list_file("reader@master:/")}
        logs = "".join(out for _, out in c.logs("reader")[1])
        assert "password is ***\n***" in logs and PASSWORD not in logs


@pytest.mark.slow  # a Dask scheduler and worker
def test_dask_workers_get_the_values_inside_the_task(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's runner opens the secrets; a Dask worker gets them with its task and needs no
    key: this one started before the key file was named, so it could not find it."""
    cluster = DaskCluster(workers=1)
    address = cluster.start().replace("tcp://", "dask://")
    try:
        monkeypatch.setenv("HAATHI_SECRETS_KEY_FILE", str(tmp_path / "runner-only.key"))
        with haathi.connect(str(store), executor=address, sandbox="bwrap") as c:
            c.create_secret(SECRET)
            c.create_repo("data")
            c.put_file("data@master:/a.txt", b"a")
            c.create_pipeline(READER)
            job = newest_job(c, "reader")
            assert job.state == JobState.SUCCESS, (job.reason, c.logs("reader")[1])
            assert job.context["executor"].startswith("dask://")
            assert c.get_file("reader@master:/env.sha") == sha(PASSWORD)
            assert c.get_file("reader@master:/file.sha") == sha(PASSWORD)
            assert "password is ***" in "".join(out for _, out in c.logs("reader")[1])
    finally:
        cluster.stop()


# ---- auth ----------------------------------------------------------------------------------


def test_with_auth_on_only_cluster_admins_manage_or_use_secrets(server: Server) -> None:
    with haathi.connect(server.url) as anon:
        root_token = anon.auth_activate()
    with haathi.connect(server.url, token=root_token) as root:
        alice = haathi.connect(server.url, token=root.get_auth_token("user:alice"))
        with alice:
            for call in (
                lambda: alice.create_secret(SECRET),
                alice.list_secret,
                lambda: alice.inspect_secret("db-creds"),
                lambda: alice.delete_secret("db-creds"),
            ):
                with pytest.raises(PermissionDenied, match="needs clusterAdmin"):
                    call()
            root.create_secret(SECRET)
            alice.create_repo("data")
            alice.put_file("data@master:/a.txt", b"a")
            with pytest.raises(PermissionDenied, match="only cluster admins may"):
                alice.create_pipeline(READER)
            assert alice.list_pipeline() == []
            root.create_pipeline(READER)
            assert newest_job(root, "reader").state == JobState.SUCCESS
            assert [s.name for s in root.list_secret()] == ["db-creds"]


# ---- what carries values, and what masks them ------------------------------------------------


def test_values_are_masked_in_output_and_absent_from_reprs() -> None:
    secrets = JobSecrets((("P", PASSWORD),), (SecretMount("/s", (("user", b"alice\n"),)),))
    # the file's value "alice\n" is masked without its newline too; under 4 bytes, not at all
    out = redact(f"p={PASSWORD} u=alice.\nshort=ab".encode(), [b"ab", *secrets.values()])
    assert out == b"p=*** u=***.\nshort=ab"
    assert secrets.masked_env() == {"P": "***"}
    task = DatumSetTask(
        store=lambda: None,  # type: ignore[arg-type, return-value]
        store_key="k",
        pipeline="p",
        job_id="j",
        transform=Transform(cmd=("true",)),
        datum_tries=1,
        datum_timeout=None,
        sandbox="none",
        scratch_root=None,
        datums=(),
        secrets=secrets,
    )
    assert PASSWORD not in repr(task) and "alice" not in repr(task) and "P" in repr(secrets)
    assert pickle.loads(pickle.dumps(secrets)) == secrets  # a Dask task carries them


def test_a_store_made_before_secrets_gets_the_table(store: Path) -> None:
    haathi.connect(str(store)).close()
    db = Database(f"sqlite:///{store / 'meta.db'}")
    with db.engine.begin() as conn:
        for sql in (*SINCE_0010, "UPDATE alembic_version SET version_num = '0010'"):
            conn.execute(text(sql))
    db.dispose()
    with haathi.connect(str(store)) as c:
        assert c.create_secret(SECRET).name == "db-creds"


def test_a_secret_may_be_yaml_on_stdin(cli: Cli) -> None:
    cli("create", "secret", "-f", "-", input=yaml.safe_dump(SECRET).encode())
    assert cli("list", "secret", "-o", "json").json()[0]["keys"] == ["password", "user"]
