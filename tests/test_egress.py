"""Egress: a pipeline's ``egress`` writes each successful job's whole output commit to an object
store (``s3://bucket/prefix``) or into the tables of a PostgreSQL database, as Pachyderm 2.x
does; a real SeaweedFS and a real PostgreSQL are the targets.

What a user can rely on, as these tests show it:

- object storage: every file of the output commit is at ``prefix/<path>``, byte for byte;
  files are overwritten and nothing is deleted there (Pachyderm's rule);
- SQL: each top-level directory names a table, whose rows are deleted and then loaded from
  every file below it (CSV with or without a header, JSON), all tables in one transaction
  (Pachyderm's ``TestEgressToPostgres``, row by row);
- credentials come from the runner's environment or a haathi secret, and user code never sees
  the ones egress uses;
- a target that refuses (a wrong password, a missing table, a bad row, credentials S3 refuses,
  a host that does not answer) fails the job with the reason (a deviation: Pachyderm retries
  for ever and leaves the job EGRESSING) and changes nothing there; the output commit is made
  all the same, and the next job (a new input commit, or ``rerun pipeline``) egresses again,
  skipping the datums that succeeded;
- while it egresses, a job is EGRESSING (``list job --state egressing``); a stopped one is
  KILLED, and one whose runner died is egressed by the next runner;
- a bad ``egress`` is refused at create (one line, nothing created), as is a secret it names
  that does not exist; it never writes into the store's own objects or metadata database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

import haathi
from haathi.client import Client
from haathi.config import store_config
from haathi.errors import InvalidArgument, NotFound, PermissionDenied
from haathi.models.info import JobInfo, JobState
from haathi.server.serve import Server
from loopback.servers import ACCESS_KEY, SECRET_KEY, Postgres, SeaweedS3, free_port
from tests.conftest import Backends, Cli
from tests.test_store_identity import SINCE_0015

SCHEMA = "(ID INT, A VARCHAR(100), DATUM INT)"  # Pachyderm's test table
AWS_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT",
)  # fmt: skip


@pytest.fixture
def pg(backends: Backends) -> Postgres:
    pg = backends.start().pg
    assert pg is not None
    return pg


@pytest.fixture
def s3(backends: Backends) -> SeaweedS3:
    s3 = backends.start().s3
    assert s3 is not None
    return s3


def database(pg: Postgres, *tables: str) -> str:
    """A new database holding Pachyderm's test table under each name; its URL."""
    url = pg.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE {table} {SCHEMA}")
    return url


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT id, a, datum FROM {table} ORDER BY id, datum").fetchall()


def insert(url: str, table: str, *values: tuple[Any, ...]) -> None:
    with psycopg.connect(url) as conn:
        for v in values:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", v)


def pg_secret(client: Client, password: str = "unused-here", name: str = "pg") -> None:
    """The secret holding the database password (the test cluster trusts loopback, so any
    password is let in, except for the roles that :meth:`Postgres.add_password_role` made)."""
    client.create_secret({"metadata": {"name": name}, "stringData": {"password": password}})


def sql_egress(url: str, file_format: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "sql_database": {
            "url": url.replace("postgresql://", "postgres://"),  # Pachyderm's spelling
            "file_format": file_format or {"type": "CSV"},
            "secret": {"name": "pg", "key": "password"},
        }
    }


def exporter(egress: dict[str, Any], name: str = "export") -> dict[str, Any]:
    """A pipeline that copies each top-level directory of ``data`` to its output (a datum
    each), with ``egress``."""
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", 'cp -r "$data" /pfs/out/']},
        "egress": egress,
    }


def put_all(client: Client, files: dict[str, bytes | str]) -> None:
    with client.start_commit("data@master") as c:
        for path, data in files.items():
            c.put_file(path, data.encode() if isinstance(data, str) else data)


def newest_job(client: Client, pipeline: str = "export") -> JobInfo:
    return client.list_job(pipeline)[0]


def objects(s3: SeaweedS3, bucket: str) -> dict[str, bytes]:
    api = boto3.client(
        "s3", endpoint_url=s3.endpoint, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
    )  # fmt: skip
    out = {}
    for page in api.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            out[item["Key"]] = api.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def new_bucket(s3: SeaweedS3) -> str:
    name = f"egress-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name


# ---- SQL: Pachyderm's TestEgressToPostgres, row by row ----------------------------------------

TABLES = ("test_table", "test_table2", "empty_table")
# name -> (files, file_format, test_table2's row): Pachyderm's four cases, as its test has them
PACHYDERM_CASES: dict[str, tuple[dict[str, str], dict[str, Any], tuple[Any, ...]]] = {
    "CSV": (
        {
            "/test_table/0000": "1,Foo,101\n2,Bar,102",
            "/test_table/subdir/0001": "3,Hello,103\n4,World,104",
            "/test_table2/0000": "1,this is in test_table2,201",
            "/empty_table/0000": "",
        },
        {"type": "CSV"},
        (1, "this is in test_table2", 201),
    ),
    "JSON": (
        {
            "/test_table/0000": '{"ID":1,"A":"Foo","DATUM":101}\n'
            '\t\t\t\t\t  {"ID":2,"A":"Bar","DATUM":102}',
            "/test_table/subdir/0001": '{"ID":3,"A":"Hello","DATUM":103}\n'
            '\t\t\t\t\t  {"ID":4,"A":"World","DATUM":104}',
            "/test_table2/0000": '{"ID":1,"A":"Foo","DATUM":201}',
            "/empty_table/0000": "",
        },
        {"type": "JSON", "columns": ["ID", "A", "DATUM"]},
        (1, "Foo", 201),
    ),
    "HEADER_CSV": (
        {
            "/test_table/0000": "ID,A,DATUM\n1,Foo,101\n2,Bar,102",
            "/test_table/subdir/0001": "ID,A,DATUM\n3,Hello,103\n4,World,104",
            "/test_table2/0000": "ID,A,DATUM\n1,this is in test_table2,201",
            "/empty_table/0000": "ID,A,DATUM",
        },
        {"type": "CSV", "columns": ["ID", "A", "DATUM"]},
        (1, "this is in test_table2", 201),
    ),
    "HEADER_CSV_JUMBLED": (
        {
            "/test_table/0000": "A,ID,DATUM\nFoo,1,101\nBar,2,102",
            "/test_table/subdir/0001": "A,DATUM,ID\nHello,103,3\nWorld,104,4",
            "/test_table2/0000": "DATUM,A,ID\n201,this is in test_table2,1",
            "/empty_table/0000": "DATUM,ID,A",
        },
        {"type": "CSV", "columns": ["ID", "A", "DATUM"]},
        (1, "this is in test_table2", 201),
    ),
}


@pytest.mark.parametrize("case", list(PACHYDERM_CASES))
def test_pachyderms_egress_to_postgres_cases_row_by_row(
    client: Client, pg: Postgres, case: str
) -> None:
    files, file_format, row2 = PACHYDERM_CASES[case]
    url = database(pg, *TABLES)
    insert(url, "test_table", (99, "from before: deleted by the egress", 0))
    pg_secret(client)
    client.create_repo("data")
    put_all(client, files)
    client.create_pipeline(exporter(sql_egress(url, file_format)))

    job = newest_job(client)
    assert (job.state, job.reason) == (JobState.SUCCESS, None)
    assert job.egress == {
        "target": url.replace("postgresql://", "postgres://"), "state": "SUCCESS",
        "attempts": 1, "rows": {"test_table": 4, "test_table2": 1, "empty_table": 0},
        "error": None,
    }  # fmt: skip
    assert rows(url, "test_table") == [
        (1, "Foo", 101), (2, "Bar", 102), (3, "Hello", 103), (4, "World", 104),
    ]  # fmt: skip
    assert rows(url, "test_table2") == [row2]
    assert rows(url, "empty_table") == []


def test_csv_nulls_quotes_blank_lines_and_json_values(client: Client, pg: Postgres) -> None:
    """As Pachyderm's reader: an unquoted empty value is NULL, a quoted one an empty string,
    blank lines are skipped, a quoted value may hold commas, quotes and newlines. JSON: a
    missing key or null is NULL, numbers keep their digits, nested values are JSON text;
    without ``columns`` the keys are the table's column names (haathi's default)."""
    url = pg.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE csv_rows (id BIGINT, a TEXT, ok BOOLEAN)")
        conn.execute('CREATE TABLE "Json_Rows" (id BIGINT, a TEXT, doc JSONB, ok BOOLEAN)')
    pg_secret(client)
    client.create_repo("data")
    put_all(client, {
        "/csv_rows/part": '\n1,,true\n\n2,"",false\r\n3,"a, ""quoted""\nvalue",\n\n',
        "/json_rows/part": '{"id": 9007199254740993, "a": null, "doc": {"k": [1, 2]}, "ok": true}'
                           '{"id": 2}\n',
    })  # fmt: skip
    client.create_pipeline(
        {
            "pipeline": {"name": "csv"},
            "input": {"pfs": {"repo": "data", "glob": "/csv_rows"}},
            "transform": {"cmd": ["sh", "-c", 'cp -r "$data" /pfs/out/']},
            "egress": sql_egress(url),
        }
    )
    client.create_pipeline(
        {
            "pipeline": {"name": "json"},
            "input": {"pfs": {"repo": "data", "glob": "/json_rows"}},
            "transform": {"cmd": ["sh", "-c", 'cp -r "$data" /pfs/out/']},
            "egress": sql_egress(url, {"type": "JSON"}),
        }
    )
    assert newest_job(client, "csv").egress["rows"] == {"csv_rows": 3}  # type: ignore[index]
    assert newest_job(client, "json").egress["rows"] == {"json_rows": 2}  # type: ignore[index]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT * FROM csv_rows ORDER BY id").fetchall() == [
            (1, None, True), (2, "", False), (3, 'a, "quoted"\nvalue', None),
        ]  # fmt: skip
        assert conn.execute('SELECT * FROM "Json_Rows" ORDER BY id').fetchall() == [
            (2, None, None, None), (9007199254740993, None, {"k": [1, 2]}, True),
        ]  # fmt: skip


# ---- object storage, byte by byte -----------------------------------------------------------


@pytest.mark.every_shape
def test_s3_egress_writes_the_whole_output_commit_byte_by_byte(
    client: Client, s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials from the runner's environment (as Pachyderm's AWS chain), the endpoint from
    the URL (gocloud's ``endpoint``); a file larger than a part goes up in parts."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = new_bucket(s3)
    api = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1")
    api.put_object(Bucket=bucket, Key="exports/not-ours", Body=b"left alone")
    big = os.urandom(9 << 20)
    client.create_repo("data")
    put_all(client, {
        "/a/small.txt": "small\n", "/a/empty": b"", "/b/c/big.bin": big,
        "/b/name with spaces & ünïcode.txt": "ü\n",
    })  # fmt: skip
    url = f"s3://{bucket}/exports?endpoint={s3.endpoint}&region=us-east-1"
    client.create_pipeline(exporter({"URL": url}))

    job = newest_job(client)
    assert (job.state, job.reason) == (JobState.SUCCESS, None)
    outputs = {
        e.path: client.get_file(f"export@master:{e.path}")
        for e in client.walk_file("export@master:/")
    }
    assert len(outputs) == 4 and outputs["/b/c/big.bin"] == big
    assert job.egress == {
        "target": url, "state": "SUCCESS", "attempts": 1, "files": 4,
        "bytes": sum(map(len, outputs.values())), "error": None,
    }  # fmt: skip
    assert objects(s3, bucket) == {
        **{f"exports{path}": data for path, data in outputs.items()},
        "exports/not-ours": b"left alone",
    }

    # the next job writes its whole output again: changed files are overwritten, and what
    # left the output stays at the target (Pachyderm deletes nothing there)
    with client.start_commit("data@master") as c:
        c.put_file("/a/small.txt", b"changed\n")
        c.delete_file("/b/c/big.bin")
    job = newest_job(client)
    assert (job.state, job.egress["files"]) == (JobState.SUCCESS, 3)  # type: ignore[index]
    found = objects(s3, bucket)
    assert found["exports/a/small.txt"] == b"changed\n"
    assert found["exports/b/c/big.bin"] == big


def test_s3_credentials_from_a_secret_reach_egress_and_never_user_code(
    client: Client, s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``object_storage.secret`` (haathi's): the runner's environment has no credentials at
    all; the secret's keys, region and endpoint are used, and the pipeline's code, which
    prints its whole environment, sees none of them."""
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    client.create_secret({"metadata": {"name": "aws"}, "stringData": {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3.endpoint,
    }})  # fmt: skip
    bucket = new_bucket(s3)
    client.create_repo("data")
    put_all(client, {"/x/a": "a"})
    spec = exporter({"object_storage": {"url": f"s3://{bucket}/out", "secret": {"name": "aws"}}})
    spec["transform"] = {"cmd": ["sh", "-c", "env > /pfs/out/env.txt; cat /proc/self/environ"]}
    client.create_pipeline(spec)

    job = newest_job(client)
    assert (job.state, job.egress["state"]) == (JobState.SUCCESS, "SUCCESS")  # type: ignore[index]
    env = client.get_file("export@master:/env.txt")
    assert objects(s3, bucket) == {"out/env.txt": env}
    for shown in (env, "".join(t for _, t in client.logs("export")[1]).encode()):
        assert SECRET_KEY.encode() not in shown and ACCESS_KEY.encode() not in shown
    assert client.inspect_pipeline("export").spec["egress"] == {
        "object_storage": {"url": f"s3://{bucket}/out", "secret": {"name": "aws"}}
    }


# ---- a target that refuses: the job fails with the reason; the next job retries ---------------


@pytest.mark.every_backend
def test_a_refused_password_fails_the_job_and_the_next_job_egresses_skipping_datums(
    client: Client, pg: Postgres
) -> None:
    pg.add_password_role("egress_writer", "right-password")
    url = database(pg, "test_table").replace("haathi@", "egress_writer@")
    with psycopg.connect(url.replace("egress_writer@", "haathi@"), autocommit=True) as conn:
        conn.execute("GRANT ALL ON test_table TO egress_writer")
    insert(url.replace("egress_writer@", "haathi@"), "test_table", (7, "before", 7))
    pg_secret(client, "wrong-password")
    client.create_repo("data")
    put_all(client, {"/p1/rows": "1,one,1\n", "/p2/rows": "2,two,2\n"})
    spec = exporter(sql_egress(url))
    spec["transform"] = {
        "cmd": [
            "sh",
            "-c",
            "mkdir -p /pfs/out/test_table; "
            'cp "$data/rows" "/pfs/out/test_table/$(basename "$data")"',
        ]
    }
    client.create_pipeline(spec)

    job = newest_job(client)
    target = url.replace("postgresql://", "postgres://")
    why = (
        f"egress to {target} failed: cannot connect to 127.0.0.1:{pg.port}: password "
        'authentication failed for user "egress_writer"'
    )
    assert (job.state, job.reason) == (JobState.FAILURE, why)
    assert job.egress == {
        "target": target,
        "state": "FAILURE",
        "attempts": 1,
        "rows": {},
        "error": why,
    }
    assert (job.data_processed, job.data_failed) == (2, 0)
    assert rows(url.replace("egress_writer@", "haathi@"), "test_table") == [(7, "before", 7)]
    # the output commit is made: readable, without an error, and downstream of it may run
    assert client.get_file("export@master:/test_table/p1") == b"1,one,1\n"
    assert client.inspect_commit(f"export@{job.id}").error is None

    client.delete_secret("pg")
    pg_secret(client, "right-password")
    put_all(client, {"/p3/rows": "3,three,3\n"})
    job = newest_job(client)
    assert (job.state, job.reason) == (JobState.SUCCESS, None)
    assert (job.data_processed, job.data_skipped) == (1, 2)  # it built on the failed job
    assert job.egress["rows"] == {"test_table": 3}  # type: ignore[index]
    assert rows(url.replace("egress_writer@", "haathi@"), "test_table") == [
        (1, "one", 1), (2, "two", 2), (3, "three", 3),
    ]  # fmt: skip


def test_a_missing_table_or_a_bad_row_changes_nothing_and_rerun_retries(
    client: Client, pg: Postgres
) -> None:
    """All tables in one transaction: ``good`` (written first, in path order) is untouched
    when ``later`` is missing, and again when a row of it does not convert."""
    url = database(pg, "good")
    insert(url, "good", (7, "before", 7))
    pg_secret(client)
    client.create_repo("data")
    put_all(client, {"/good/rows": "1,one,1\n", "/later/rows": "2,two,2\n"})
    client.create_pipeline(exporter(sql_egress(url)))

    job = newest_job(client)
    assert job.state == JobState.FAILURE
    assert job.reason is not None and job.reason.endswith(
        "failed: table later: table public.later does not exist (create it before egress)"
    )
    assert rows(url, "good") == [(7, "before", 7)]

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE later {SCHEMA}")
    client.rerun_pipeline("export")  # a job over the same inputs: it egresses again
    job = newest_job(client)
    assert (job.state, job.data_skipped) == (JobState.SUCCESS, 2)
    assert (rows(url, "good"), rows(url, "later")) == ([(1, "one", 1)], [(2, "two", 2)])

    put_all(client, {"/good/rows": "3,three,3\n", "/later/rows": "4,four,not a number\n"})
    job = newest_job(client)
    assert job.state == JobState.FAILURE
    assert job.reason is not None and job.reason.endswith(
        'table later, file /later/rows: invalid input syntax for type integer: "not a number" '
        '(COPY later, line 1, column datum: "not a number")'
    )
    assert (rows(url, "good"), rows(url, "later")) == ([(1, "one", 1)], [(2, "two", 2)])


MISFITS = {
    "CSV, a field too many": (
        {"type": "CSV"},
        "1,a,1,extra\n",
        'extra data after last expected column (COPY t, line 1: "1,a,1,extra")',
    ),
    "CSV, a header column not in columns": (
        {"type": "CSV", "columns": ["ID", "A", "DATUM"]},
        "ID,B,DATUM\n1,a,1\n",
        "unexpected header column 'B' (not in file_format.columns)",
    ),
    "CSV, columns not one per table column": (
        {"type": "CSV", "columns": ["ID", "A"]},
        "ID,A\n1,a\n",
        "file_format.columns names 2 columns; the table has 3 (id, a, datum)",
    ),
    "JSON, not an object": (
        {"type": "JSON"},
        '{"id": 1}\n[1, 2]\n',
        "value 2 is not a JSON object",
    ),
    "JSON, cut short": (
        {"type": "JSON"},
        '{"id": 1}\n{"id": ',
        "invalid JSON after 1 values: Expecting value",
    ),
}


@pytest.mark.parametrize(("file_format", "text", "why"), MISFITS.values(), ids=list(MISFITS))
def test_a_file_that_does_not_fit_its_table_fails_naming_it(
    client: Client, pg: Postgres, file_format: dict[str, Any], text: str, why: str
) -> None:
    url = database(pg, "t")
    insert(url, "t", (7, "before", 7))
    pg_secret(client)
    client.create_repo("data")
    put_all(client, {"/t/rows": text})
    client.create_pipeline(exporter(sql_egress(url, file_format)))
    job = newest_job(client)
    assert (job.state, job.reason) == (
        JobState.FAILURE,
        f"egress to {url.replace('postgresql', 'postgres')} failed: table t, file /t/rows: {why}",
    )
    assert rows(url, "t") == [(7, "before", 7)]


def test_a_file_at_the_top_level_fails_sql_egress(client: Client, pg: Postgres) -> None:
    """Each top-level directory names a table: a file there names none (Pachyderm's docs)."""
    url = database(pg, "t")
    pg_secret(client)
    client.create_repo("data")
    put_all(client, {"/rows.csv": "1,a,1\n"})
    client.create_pipeline(exporter(sql_egress(url)))
    job = newest_job(client)
    assert job.state == JobState.FAILURE
    assert job.reason is not None and job.reason.endswith(
        "failed: /rows.csv is not under a table directory (each top-level directory names the "
        "table its files are loaded into)"
    )


def test_an_unreachable_target_is_tried_three_times_then_fails_the_job(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection refused may pass: three attempts (1 s, then 2 s apart), then FAILURE."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")  # credentials from the environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    port = free_port()  # nothing listens there
    pg_secret(client)
    client.create_repo("data")
    put_all(client, {"/t/rows": "1,a,1\n"})
    t0 = time.monotonic()
    client.create_pipeline(exporter(sql_egress(f"postgresql://u@127.0.0.1:{port}/db"), "to_sql"))
    s3_url = f"s3://b/x?endpoint=http://127.0.0.1:{port}"
    client.create_pipeline(exporter({"URL": s3_url}, "to_s3"))
    assert time.monotonic() - t0 >= 2 * 3.0

    job = newest_job(client, "to_sql")
    assert job.egress is not None and job.egress["attempts"] == 3
    assert job.reason == (
        f"egress to postgres://u@127.0.0.1:{port}/db failed: cannot connect to 127.0.0.1:{port}: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    )
    job = newest_job(client, "to_s3")
    assert job.egress is not None and job.egress["attempts"] == 3
    assert job.reason == (
        f"egress to {s3_url} failed: writing x/t/rows: cannot connect (error sending request)"
    )


def test_credentials_s3_refuses_fail_the_job_and_a_fixed_secret_succeeds(
    client: Client, s3: SeaweedS3
) -> None:
    bucket = new_bucket(s3)
    wrong = {
        "AWS_ACCESS_KEY_ID": "nobody",
        "AWS_SECRET_ACCESS_KEY": "wrong",
        "AWS_ENDPOINT_URL": s3.endpoint,
    }
    client.create_secret({"metadata": {"name": "aws"}, "stringData": wrong})
    client.create_repo("data")
    put_all(client, {"/t/a": "a"})
    url = f"s3://{bucket}/x"
    client.create_pipeline(exporter({"object_storage": {"url": url, "secret": {"name": "aws"}}}))
    job = newest_job(client)
    assert (job.state, job.egress["attempts"]) == (JobState.FAILURE, 1)  # type: ignore[index]
    assert job.reason == (
        f"egress to {url} failed: writing x/t/a: 403 Forbidden (InvalidAccessKeyId: The access "
        "key ID you provided does not exist in our records.)"
    )
    assert objects(s3, bucket) == {}

    client.delete_secret("aws")
    client.create_secret({"metadata": {"name": "aws"}, "stringData": {
        **wrong, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }})  # fmt: skip
    client.rerun_pipeline("export")
    assert newest_job(client).state == JobState.SUCCESS
    assert objects(s3, bucket) == {"x/t/a": b"a"}


@pytest.mark.every_backend
@pytest.mark.parametrize("backend", ["s3pg"], indirect=True)
def test_egress_never_writes_into_the_store_itself(
    client: Client, store: Path, s3: SeaweedS3
) -> None:
    """Whatever the runner's credentials may reach (here, the store's own), the store's
    objects and its metadata database are no egress target."""
    config = store_config(str(store), {})
    bucket, prefix = config.s3_bucket_prefix
    own_db = config.db_url.replace("postgresql+psycopg://", "postgres://")
    pg_secret(client)
    client.create_repo("data")
    put_all(client, {"/jobs/rows": "1,a,1\n"})
    url = f"s3://{bucket}/{prefix}/packs?endpoint={s3.endpoint}"
    client.create_pipeline(exporter({"URL": url}, "into_objects"))
    client.create_pipeline(exporter(sql_egress(own_db), "into_db"))
    assert newest_job(client, "into_objects").reason == (
        f"egress to {url} failed: s3://{bucket}/{prefix}/packs is where this store keeps its "
        f"own objects (s3://{bucket}/{prefix}): egress may not write there"
    )
    reason = newest_job(client, "into_db").reason
    assert reason is not None and reason.endswith(
        "is this store's own metadata database: egress may not write there"
    )


# ---- EGRESSING: seen, stopped, taken over ---------------------------------------------------


class TableLock:
    """Holds an exclusive lock on a table, so that an egress into it waits (EGRESSING)."""

    def __init__(self, url: str, table: str) -> None:
        self.conn = psycopg.connect(url)
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def wait_for_state(client: Client, state: JobState, pipeline: str = "export") -> JobInfo:
    deadline = time.monotonic() + 60
    while True:
        jobs = client.list_job(pipeline)
        if jobs and jobs[0].state == state:
            return jobs[0]
        assert time.monotonic() < deadline, f"never {state.value}: {jobs}"
        time.sleep(0.1)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_job_is_egressing_while_it_egresses_through_serve_and_a_stop_kills_it(
    server: Server, pg: Postgres, tmp_path: Path
) -> None:
    url = database(pg, "test_table")
    insert(url, "test_table", (7, "before", 7))
    lock = TableLock(url, "test_table")
    try:
        with haathi.connect(server.url, run_jobs=False) as client:  # the server's runner runs it
            pg_secret(client)
            client.create_repo("data")
            put_all(client, {"/test_table/rows": "1,one,1\n"})
            client.create_pipeline(exporter(sql_egress(url)))
            job = wait_for_state(client, JobState.EGRESSING)
            assert job.egress is not None and job.egress["state"] == "EGRESSING"
            assert [j.id for j in client.list_job(state="egressing")] == [job.id]
            assert client.list_job(state=["success", "JOB_FAILURE"]) == []
            # the output commit is made while the job egresses
            assert client.get_file("export@master:/test_table/rows") == b"1,one,1\n"

            cli = Cli(server.url, tmp_path)  # type: ignore[arg-type]
            table = cli("list", "job", "--state", "egress").out
            assert job.id in table and "EGRESSING" in table
            assert cli("list", "job", "-s", "running").out.count("\n") == 1  # the header only
            shown = cli("inspect", "job", f"export@{job.id}").out
            assert "State: EGRESSING\n" in shown
            assert (
                f"Egress: {url.replace('postgresql', 'postgres')}: EGRESSING, no tables (1 attempt)"
                in shown
            )
            bad = cli.fails("list", "job", "--state", "sleeping")
            assert bad.err.startswith(
                "error: state 'sleeping' must be one of created, running, egressing"
            )

            client.stop_job(f"export@{job.id}")
            job = wait_for_state(client, JobState.KILLED)
            assert job.reason == "job stopped"
            deadline = time.monotonic() + 30
            while client.inspect_job(f"export@{job.id}").egress["state"] != "KILLED":  # type: ignore[index]
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        lock.release()
    assert rows(url, "test_table") == [(7, "before", 7)]  # its transaction was rolled back


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_job_whose_worker_dies_while_egressing_is_egressed_by_the_next_worker(
    cli: Cli, pg: Postgres, tmp_path: Path
) -> None:
    url = database(pg, "test_table")
    lock = TableLock(url, "test_table")
    env = dict(os.environ, HAATHI_ADDRESS=str(cli.store), HAATHI_JOB_LEASE="2")
    try:
        secret = tmp_path / "pg.json"
        secret.write_text(json.dumps({"metadata": {"name": "pg"}, "stringData": {"password": "x"}}))
        cli("create", "secret", "-f", str(secret))
        cli("create", "repo", "data")
        cli("put", "file", "data@master:/test_table/rows", "-f", "-", input=b"1,one,1\n")
        spec = tmp_path / "export.json"
        spec.write_text(json.dumps(exporter(sql_egress(url))))
        cli("create", "pipeline", "-f", str(spec), "--no-wait")
        worker = subprocess.Popen(
            [sys.executable, "-m", "haathi", "run", "worker"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        with haathi.connect(str(cli.store), run_jobs=False) as client:
            wait_for_state(client, JobState.EGRESSING)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies as it egresses
        worker.wait()
    finally:
        lock.release()
    job = cli("list", "job", "--state", "egressing", "-o", "json").json()
    assert len(job) == 1  # nobody knows yet
    time.sleep(2.5)  # the dead worker's lease expires
    done = subprocess.run(
        [sys.executable, "-m", "haathi", "run", "worker", "--once"],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [job] = cli("list", "job", "-p", "export", "-o", "json").json()
    assert (job["state"], job["egress"]["state"], job["egress"]["rows"]) == (
        "SUCCESS", "SUCCESS", {"test_table": 1},
    )  # fmt: skip
    assert rows(url, "test_table") == [(1, "one", 1)]


# ---- bad input: refused at create, one line, nothing created ------------------------------

PG_URL = "postgres://user@db.example:5432/warehouse"
PG_SECRET = {"name": "pg", "key": "password"}


def sql_db(url: str, file_format: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "sqlDatabase": {
            "url": url,
            "fileFormat": file_format or {"type": "CSV"},
            "secret": PG_SECRET,
        }
    }


BAD_EGRESS: dict[str, tuple[dict[str, Any], str]] = {
    "no target": ({}, "egress needs a target: URL, object_storage or sql_database"),
    "two targets": (
        {"URL": "s3://b/x", "objectStorage": {"url": "s3://b/y"}},
        "egress takes one target, got egress.URL and egress.objectStorage",
    ),
    "not a URL": ({"URL": "garbage-url"}, "egress.URL 'garbage-url' is not a URL (scheme://...)"),
    "a local path": (
        {"URL": "file:///etc"},
        "egress.URL: egress to file:// is not allowed (it would write on the server's disk)",
    ),
    "an unknown store": (
        {"object_storage": {"url": "ftp://h/x"}},
        "egress.object_storage.url 'ftp://h/x': unsupported object store 'ftp' (use "
        "s3://bucket/prefix)",
    ),
    "no bucket": ({"URL": "s3:///x"}, "egress.URL 's3:///x' names no bucket (s3://bucket/prefix)"),
    "keys in the URL": (
        {"URL": "s3://key:secret@b/x"},
        "egress.URL: an s3:// URL holds no credentials (use the environment or "
        "object_storage.secret)",
    ),
    "an unknown S3 parameter": (
        {"URL": "s3://b/x?profile=prod"},
        "egress.URL: unsupported parameter 'profile' (use endpoint, region, disableSSL, "
        "s3ForcePathStyle)",
    ),
    "an unknown field": (
        {"URL": "s3://b/x", "bucket": "b"},
        "unsupported field 'egress.bucket' in pipeline spec",
    ),
    "SQL without a secret": (
        {"sqlDatabase": {"url": PG_URL, "fileFormat": {"type": "CSV"}}},
        "egress.sql_database.secret is required",
    ),
    "SQL secret without a key": (
        {"sqlDatabase": {"url": PG_URL, "fileFormat": {"type": "CSV"}, "secret": {"name": "pg"}}},
        "egress.sql_database.secret.name and egress.sql_database.secret.key are required",
    ),
    "no file format": (
        {"sqlDatabase": {"url": PG_URL, "secret": PG_SECRET}},
        "egress.sqlDatabase.file_format.type is required (CSV or JSON)",
    ),
    "a bad file format": (
        {"sqlDatabase": {"url": PG_URL, "fileFormat": {"type": "XML"}, "secret": PG_SECRET}},
        "egress.sqlDatabase.fileFormat.type must be one of CSV, JSON, PARQUET, got 'XML'",
    ),
    "a password in the URL": (
        sql_db("postgres://u:pw@h/db"),
        "egress.sqlDatabase.url holds a password, which would show in the spec: put it in the "
        "secret",
    ),
    "an unknown driver": (
        sql_db("oracle://u@h/db"),
        "egress.sqlDatabase.url: unsupported database 'oracle' (use postgresql://user@host:port/db)",
    ),
    "no database": (
        sql_db("postgres://u@h"),
        "egress.sqlDatabase.url 'postgres://u@h' needs a user, a host and a database "
        "(postgresql://user@host:5432/db)",
    ),
    "a libpq parameter that reads the server's files": (
        sql_db(PG_URL + "?passfile=/root/.pgpass"),
        "egress.sqlDatabase.url: unsupported parameter 'passfile' (use sslmode, connect_timeout, "
        "application_name, target_session_attrs, options)",
    ),
    "repeated columns": (
        sql_db(PG_URL, {"type": "CSV", "columns": ["a", "a"]}),
        "egress.sqlDatabase.fileFormat.columns must name each column once",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("egress", "message"), BAD_EGRESS.values(), ids=list(BAD_EGRESS))
def test_a_bad_egress_is_refused_in_one_line_and_creates_nothing(
    cli: Cli, tmp_path: Path, egress: dict[str, Any], message: str
) -> None:
    cli("create", "repo", "data")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(exporter(egress)))
    for command in ("create", "validate"):
        res = cli.fails(command, "pipeline", "-f", str(spec))
        assert (res.code, res.err) == (2, f"error: {message}\n")
    assert cli("list", "pipeline", "-o", "json").json() == []
    assert [r["name"] for r in cli("list", "repo", "-o", "json").json()] == ["data"]


def test_a_secret_egress_names_must_exist_with_its_keys(client: Client) -> None:
    client.create_repo("data")
    sql = exporter(sql_egress("postgresql://u@h:5432/db"))
    s3 = exporter({"object_storage": {"url": "s3://b/x", "secret": {"name": "aws"}}})
    with pytest.raises(
        NotFound, match=r"^secret pg not found \(create it: haathi create secret -f FILE\)$"
    ):
        client.create_pipeline(sql)
    client.create_secret({"metadata": {"name": "pg"}, "stringData": {"user": "u"}})
    with pytest.raises(NotFound, match=r"^secret pg has no key password \(egress needs it\)$"):
        client.create_pipeline(sql)
    client.create_secret({"metadata": {"name": "aws"}, "stringData": {"AWS_ACCESS_KEY_ID": "k"}})
    with pytest.raises(NotFound, match=r"^secret aws has no key AWS_SECRET_ACCESS_KEY"):
        client.create_pipeline(s3)
    assert client.list_pipeline() == []
    with pytest.raises(InvalidArgument, match=r"^state 'egres' must be one of"):
        client.list_job(state="egres")


def test_a_deleted_secret_fails_the_job_at_egress_saying_which(
    client: Client, pg: Postgres
) -> None:
    url = database(pg, "t")
    pg_secret(client)
    client.create_repo("data")
    client.create_pipeline(exporter(sql_egress(url)))
    client.delete_secret("pg")
    put_all(client, {"/t/rows": "1,a,1\n"})
    job = newest_job(client)
    assert job.state == JobState.FAILURE
    assert job.reason is not None and job.reason.endswith(
        "failed: secret pg not found (create it: haathi create secret -f FILE)"
    )


def test_targets_pachyderm_has_and_haathi_lacks_validate_with_a_note_and_fail_at_egress(
    client: Client, cli: Cli, tmp_path: Path
) -> None:
    """Pachyderm's churn example egresses to Snowflake: it validates, with a note, and its
    jobs fail at egress saying why (they run, and make their output, all the same)."""
    client.create_repo("data")
    put_all(client, {"/t/a": "a"})
    spec = exporter({"URL": "gs://bucket/x"})
    (checked,) = client.validate_pipeline(spec)
    assert checked["notes"] == [
        "egress: gs:// is not supported here (only s3://): this pipeline's jobs will fail at egress"
    ]
    client.create_pipeline(spec)
    job = newest_job(client)
    assert (job.state, job.reason) == (
        JobState.FAILURE,
        "egress to gs://bucket/x failed: gs:// is not supported here (only s3://)",
    )
    assert client.get_file("export@master:/t/a") == b"a"


def test_with_auth_on_only_cluster_admins_create_pipelines_with_egress(server: Server) -> None:
    """Egress writes outside haathi with the server's credentials (or a secret's)."""
    with haathi.connect(server.url) as anon:
        root_token = anon.auth_activate()
    with haathi.connect(server.url, token=root_token) as root:
        alice = haathi.connect(server.url, token=root.get_auth_token("user:alice"))
        with alice:
            alice.create_repo("data")
            spec = exporter({"URL": "gs://bucket/x"})
            with pytest.raises(PermissionDenied, match="may not create a pipeline that has egress"):
                alice.create_pipeline(spec)
            assert alice.list_pipeline() == []
            root.create_pipeline(spec)
            assert [p.name for p in root.list_pipeline()] == ["export"]


def test_a_store_made_before_egress_gets_the_column(store: Path) -> None:
    """Migration 0015: an existing store's jobs table gains ``egress``; its jobs have none."""
    from sqlalchemy import text

    from haathi.meta.database import Database

    with haathi.connect(str(store)) as c:
        c.create_repo("data")
        c.put_file("data@master:/a", b"a")
        c.create_pipeline(exporter({"URL": "gs://bucket/x"}) | {"egress": None})
    db = Database(f"sqlite:///{store / 'meta.db'}")
    with db.engine.begin() as conn:
        for sql in SINCE_0015:  # (what the migrations after 0015 add)
            conn.execute(text(sql))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN egress"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0013'"))
    db.dispose()
    with haathi.connect(str(store)) as c:
        (job,) = c.list_job("export")
        assert (job.state, job.egress) == (JobState.SUCCESS, None)
