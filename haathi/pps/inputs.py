"""A job's view of its inputs: glob matches over input commits, with the files behind them.

A glob hit is a file or a directory (as Pachyderm's ``GlobFile``); a directory's content hash
is BLAKE3 over its files' relative paths and content hashes, so it changes exactly when a file
below it does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import blake3

from haathi.models.glob import compile_input_glob
from haathi.pfs.context import PfsContext
from haathi.pps.datums import Match
from haathi.pps.input_spec import CronInput, PfsInput
from haathi.tree import prolly
from haathi.tree.entry import FileEntry


@dataclass
class InputCommit:
    repo: str
    branch: str
    commit: str
    root: bytes | None


@dataclass
class GlobIndex:
    """Glob matches per input, and the file entries each matched path stands for."""

    commits: dict[tuple[str, str], InputCommit]
    files: dict[tuple[str, str, str], list[FileEntry]] = field(default_factory=dict)

    def files_of(self, repo: str, commit: str, path: str) -> list[FileEntry]:
        return self.files.get((repo, commit, path), [])


def _leaf(inp: PfsInput | CronInput) -> tuple[str, str, str]:
    if isinstance(inp, CronInput):
        return inp.repo, "master", "/*"
    return inp.repo, inp.branch, inp.glob


def glob_commit(
    ctx: PfsContext, root: bytes | None, pattern: str
) -> tuple[list[Match], dict[str, list[FileEntry]]]:
    """Files and directories of the tree at ``root`` matching ``pattern``, sorted by path."""
    g = compile_input_glob(pattern)
    literal = g.literal_prefix
    scan_from = literal[: literal.rfind("/") + 1] or "/"
    hits: dict[str, list[FileEntry]] = {}
    dirs_seen: set[str] = set()
    matched_dirs: list[str] = []
    if g.pattern == "/":
        hits["/"] = []
        matched_dirs.append("/")
    entries: Iterable[FileEntry] = prolly.iter_prefix(root, scan_from, ctx.nodes)
    for e in entries:
        if e.path.count("/") > 1:  # below a directory (each directory checked once)
            parts = e.path.split("/")
            for i in range(2, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs_seen:
                    dirs_seen.add(d)
                    if g.match(d):
                        hits[d] = []
                        matched_dirs.append(d)
        if g.match(e.path):
            hits[e.path] = [e]
        if matched_dirs:
            # entries come sorted, so a directory's files are contiguous: drop those left
            matched_dirs = [d for d in matched_dirs if d == "/" or e.path.startswith(d + "/")]
            for d in matched_dirs:
                hits[d].append(e)
    matches = []
    for path in sorted(hits):
        files = hits[path]
        if len(files) == 1 and files[0].path == path:  # a file
            matches.append(Match(path, files[0].hash.hex(), files[0].size, False))
        else:
            matches.append(Match(path, dir_hash(path, files), sum(f.size for f in files), True))
    return matches, hits


def dir_hash(path: str, files: Iterable[FileEntry]) -> str:
    """The content hash of directory ``path`` holding ``files`` (sorted by path): BLAKE3 over
    each file's path after ``path`` (so ``a.txt`` below the root ``/``, ``/a.txt`` below
    ``/d``: the form datum hashes have always used) and its content hash."""
    h = blake3.blake3()
    for f in files:
        h.update(f.path[len(path) :].encode() + b"\0" + f.hash)
    return h.hexdigest()


def glob_fn(ctx: PfsContext, index: GlobIndex) -> Callable[[PfsInput], tuple[str, list[Match]]]:
    """The ``GlobFn`` datum formation calls, over the job's input commits."""

    def glob(inp: PfsInput) -> tuple[str, list[Match]]:
        repo, branch, pattern = _leaf(inp)
        ic = index.commits.get((repo, branch))
        if ic is None:  # the branch had no commit when the job was created
            return "", []
        matches, hits = glob_commit(ctx, ic.root, pattern)
        for path, files in hits.items():
            index.files[(repo, ic.commit, path)] = files
        return ic.commit, matches

    return glob
