"""``put file -r`` through the Python API, in its own process (used when the CLI is missing).

    python bench/haathi_put.py STORE REPO@BRANCH SRC_DIR_OR_FILE [-p N] [--dest /] [--create]

Does what ``haathi put file REPO@BRANCH:/ -r -f SRC -p N`` does: one atomic commit holding one
file per file below SRC (or the single file SRC), read with N threads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import haathi
from haathi.client import sources
from haathi.errors import NotFound


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("target", help="repo@branch")
    ap.add_argument("source")
    ap.add_argument("-p", "--parallelism", type=int, default=4)
    ap.add_argument("--dest", default="/")
    ap.add_argument("--create", action="store_true", help="create the repo if missing")
    a = ap.parse_args(argv)
    src = Path(a.source)
    with haathi.connect(a.store) as c:
        repo = a.target.partition("@")[0]
        if a.create:
            try:
                c.inspect_repo(repo)
            except NotFound:
                c.create_repo(repo)
        if src.is_dir():
            ops = list(sources.walk_dir(src, a.dest))
        else:
            ops = [sources.file_op(src, a.dest.rstrip("/") + "/" + src.name)]
        commit = c.modify_file(a.target, ops, parallelism=a.parallelism)
    print(commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
