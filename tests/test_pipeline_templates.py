"""Pipeline specs from URLs and stdin, and Jsonnet templates, as pachctl takes them:
``create/update pipeline -f URL``, ``-f`` defaulting to stdin, and ``--jsonnet FILE|URL --arg
k=v`` (the template's top-level function is called with the args as strings; it makes one
spec or a list of specs). A template or spec that cannot be read or rendered is one line
naming why (a Jsonnet error its line), and nothing is created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from haathi.client import Client
from haathi.errors import InvalidArgument
from tests.conftest import Cli
from tests.http_source import HttpSource


@pytest.fixture
def web() -> Iterator[HttpSource]:
    s = HttpSource().start()
    yield s
    s.stop()


def copy_spec(name: str, repo: str = "images") -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", f'cp "${repo}" /pfs/out/']},
    }


# Pachyderm's examples/opencv/jsonnet/edges.jsonnet, its image and command swapped for a copy
EDGES_JSONNET = """\
////
// Template arguments:
//
// suffix : An arbitrary suffix appended to the name of this pipeline, for
//          disambiguation when multiple instances are created.
// src : the repo from which this pipeline will read the images to which
//       it applies edge detection.
////
function(suffix, src)
{
  pipeline: { name: "edges-"+suffix },
  description: "OpenCV edge detection on "+src,
  input: {
    pfs: {
      name: "images",
      glob: "/*",
      repo: src,
    }
  },
  transform: {
    cmd: [ "sh", "-c", "cp $images /pfs/out/" ],
  }
}
"""


def images(cli: Cli) -> None:
    cli("create", "repo", "images")
    cli("put", "file", "images@master:/a.png", "-f", "-", input=b"a\n")


def pipelines(cli: Cli) -> list[str]:
    return [p["name"] for p in cli("list", "pipeline", "-o", "json").json()]


def test_create_pipeline_from_url_and_stdin(cli: Cli, web: HttpSource) -> None:
    images(cli)
    web.files["copy.json"] = json.dumps(copy_spec("from-url")).encode()
    cli("create", "pipeline", "-f", f"{web.url}/files/copy.json")
    cli("create", "pipeline", input=json.dumps(copy_spec("from-stdin")).encode())  # no -f
    cli("create", "pipeline", "-f", "-", input=json.dumps(copy_spec("dash")).encode())
    assert sorted(pipelines(cli)) == ["dash", "from-stdin", "from-url"]
    assert cli("get", "file", "from-url@master:/a.png").out == "a\n"
    spec = copy_spec("from-url")
    spec["description"] = "updated"
    web.files["copy.json"] = json.dumps(spec).encode()
    cli("update", "pipeline", "-f", f"{web.url}/files/copy.json")
    assert cli("inspect", "pipeline", "from-url", "-o", "json").json()["spec"]["description"] == (
        "updated"
    )
    cli("validate", "pipeline", input=json.dumps(copy_spec("checked")).encode())


def test_create_pipeline_from_a_bad_url_creates_nothing(cli: Cli, web: HttpSource) -> None:
    images(cli)
    res = cli.fails("create", "pipeline", "-f", f"{web.url}/files/missing.json")
    assert res.code == 3
    assert f"cannot download {web.url}/files/missing.json: HTTP 404 Not Found" in res.err
    assert "no such file" not in res.err.lower()
    res = cli.fails("update", "pipeline", "-f", f"{web.url}/status/500")
    assert "HTTP 500" in res.err
    assert pipelines(cli) == []


def test_create_pipeline_jsonnet(cli: Cli, tmp_path: Path, web: HttpSource) -> None:
    """Pachyderm's opencv/jsonnet example sequence, with pachctl replaced by haathi."""
    images(cli)
    (tmp_path / "edges.jsonnet").write_text(EDGES_JSONNET)
    cli("create", "pipeline", "--jsonnet", "edges.jsonnet", "--arg", "suffix=1",
        "--arg", "src=images")  # fmt: skip
    info = cli("inspect", "pipeline", "edges-1", "-o", "json").json()
    assert info["spec"]["description"] == "OpenCV edge detection on images"
    assert cli("get", "file", "edges-1@master:/a.png").out == "a\n"
    # the same template from a URL, a second instance
    web.files["edges.jsonnet"] = EDGES_JSONNET.encode()
    cli("create", "pipeline", "--jsonnet", f"{web.url}/files/edges.jsonnet",
        "--arg", "suffix=2", "--arg", "src=edges-1")  # fmt: skip
    assert cli("get", "file", "edges-2@master:/a.png").out == "a\n"
    # update through the template; the last value of an arg given twice counts
    cli("update", "pipeline", "--jsonnet", "edges.jsonnet", "--arg", "suffix=1",
        "--arg", "src=nowhere", "--arg", "src=images", "--reprocess")  # fmt: skip
    assert cli("inspect", "pipeline", "edges-1", "-o", "json").json()["version"] == 2
    assert sorted(pipelines(cli)) == ["edges-1", "edges-2"]


def test_jsonnet_list_of_specs_and_imports(cli: Cli, tmp_path: Path) -> None:
    """A template may make a list of specs, and import a file beside it."""
    images(cli)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "copy.libsonnet").write_text(
        "function(name, repo) { pipeline: { name: name }, input: { pfs: { repo: repo, "
        'glob: "/*" } }, transform: { cmd: ["sh", "-c", "cp /pfs/" + repo + "/* /pfs/out/"] } }'
    )
    (tmp_path / "lib" / "pair.jsonnet").write_text(
        'local copy = import "copy.libsonnet";\n'
        "function(prefix) [copy(prefix + '-a', 'images'), copy(prefix + '-b', prefix + '-a')]\n"
    )
    cli("create", "pipeline", "--jsonnet", "lib/pair.jsonnet", "--arg", "prefix=p")
    assert sorted(pipelines(cli)) == ["p-a", "p-b"]
    assert cli("get", "file", "p-b@master:/a.png").out == "a\n"


JSONNET_ERRORS = [
    # (template, args, what the one line says)
    ("function(a)\n{\n  x: a +\n}\n", ["a=1"], "STATIC ERROR: bad.jsonnet:4:1"),
    ('function(a)\n{\n  pipeline: error "no " + a,\n}\n', ["a=1"],
     "RUNTIME ERROR: no 1 (at bad.jsonnet:3:13-28)"),
    ("function(a, b) { x: a }", ["a=1"], "function parameter b not bound in call"),
    ("function(a) { x: a }", ["a=1", "c=2"], "function has no parameter c"),
    ('local x = import "nowhere.libsonnet"; x', [], "nowhere.libsonnet"),
    ('"a string"', [], "document 1 is not an object"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "args", "why"), JSONNET_ERRORS)
def test_jsonnet_errors_create_nothing(
    cli: Cli, tmp_path: Path, template: str, args: list[str], why: str
) -> None:
    images(cli)
    (tmp_path / "bad.jsonnet").write_text(template)
    argv = [a for arg in args for a in ("--arg", arg)]
    res = cli.fails("create", "pipeline", "--jsonnet", "bad.jsonnet", *argv)
    assert res.code == 2 and why in res.err, res.err
    assert pipelines(cli) == []


def test_jsonnet_bad_arguments(cli: Cli, tmp_path: Path) -> None:
    images(cli)
    (tmp_path / "edges.jsonnet").write_text(EDGES_JSONNET)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(copy_spec("c")))
    res = cli.fails("create", "pipeline", "--jsonnet", "edges.jsonnet", "--arg", "suffix")
    assert 'invalid template argument "suffix": must have form "key=value"' in res.err
    res = cli.fails("create", "pipeline", "-f", str(spec), "--jsonnet", "edges.jsonnet")
    assert "cannot set both --file and --jsonnet" in res.err
    res = cli.fails("create", "pipeline", "-f", str(spec), "--arg", "a=b")
    assert "--arg takes --jsonnet" in res.err
    res = cli.fails("create", "pipeline", "--jsonnet", "missing.jsonnet")
    assert "cannot read missing.jsonnet" in res.err
    assert pipelines(cli) == []


def test_remote_template_imports_no_local_file(cli: Cli, web: HttpSource, tmp_path: Path) -> None:
    """A template read from a URL imports URLs (relative to its own), never the client's
    files: it cannot copy them into a spec."""
    images(cli)
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    web.files["name.txt"] = b"from-the-web"
    template = (
        '{{ pipeline: {{ name: importstr "{}" }}, transform: {{ cmd: ["true"] }}, '
        'input: {{ pfs: {{ repo: "images", glob: "/" }} }} }}'
    )
    web.files["ok.jsonnet"] = template.format("name.txt").encode()
    cli("create", "pipeline", "--jsonnet", f"{web.url}/files/ok.jsonnet")
    assert pipelines(cli) == ["from-the-web"]
    web.files["abs.jsonnet"] = template.format(secret).encode()
    res = cli.fails("create", "pipeline", "--jsonnet", f"{web.url}/files/abs.jsonnet")
    assert f"cannot download {web.url}{secret}: HTTP 404" in res.err  # its host, not a file
    web.files["file.jsonnet"] = template.format(f"file://{secret}").encode()
    res = cli.fails("create", "pipeline", "--jsonnet", f"{web.url}/files/file.jsonnet")
    assert "only http(s) URLs may be imported" in res.err
    assert "hunter2" not in res.err and pipelines(cli) == ["from-the-web"]


def test_client_render_template(client: Client, tmp_path: Path) -> None:
    client.create_repo("images")
    client.put_file("images@master:/a.png", b"a\n")
    (tmp_path / "edges.jsonnet").write_text(EDGES_JSONNET)
    specs = client.render_template(
        str(tmp_path / "edges.jsonnet"), {"suffix": "x", "src": "images"}
    )
    assert [s["pipeline"]["name"] for s in specs] == ["edges-x"]
    client.create_pipeline(specs)
    assert client.get_file("edges-x@master:/a.png") == b"a\n"
    with pytest.raises(InvalidArgument, match="function parameter src not bound"):
        client.render_template(str(tmp_path / "edges.jsonnet"), ["suffix=y"])


# list commit on a branch with no commits ---------------------------------------------------


def test_list_commit_of_a_branch_with_no_commits_is_empty(cli: Cli) -> None:
    cli("create", "repo", "r")
    cli("create", "branch", "r@dev")
    assert cli("list", "commit", "r@dev", "-o", "json").json() == []
    assert "REPO" in cli("list", "commit", "r@dev").out  # the header, no rows
    res = cli.fails("list", "commit", "r@nope")  # a branch that does not exist still is not
    assert res.code == 3
