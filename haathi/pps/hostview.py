"""Which host files user code sees in the bwrap sandbox, read-only.

Everything else of the host is absent. User code sees:

- the system: ``/usr``, ``/bin``, ``/sbin``, ``/lib*``, ``/opt`` and ``/etc`` (without its
  secrets: :data:`ETC_SECRETS`);
- the Python that runs haathi's launcher (its prefix and base prefix), and the program each
  command names (resolved on the run's ``PATH``): its virtualenv when it is in one, else the
  file itself — so interpreters and tools work wherever they are installed, ``/tmp`` included;
- the paths the operator lists (``[pipelines] sandbox_paths``), and, while auth is off, the
  working directory of the process that runs the job (a project's code, as ``dvc repro`` sees
  it).

It never sees a hidden path, even inside one of those: the store directory (its metadata,
objects, config and credentials), haathi's client config and saved tokens, and the usual
credential files in any home directory (:data:`HOME_SECRETS`); a shown path inside a hidden
one is dropped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/etc")
"""Host directories every sandbox shows (a top-level symlink, as in merged-/usr systems,
stays a symlink)."""

SANDBOX_OWN = ("/tmp", "/pfs", "/dev", "/proc")
"""Where the sandbox mounts its own: a host path there is shown only when it lies in ``/tmp``
(an interpreter or program installed there), on top of the private ``/tmp``."""

ETC_SECRETS = (
    "shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "ssl/private",
    "security/opasswd", "haathi",
)  # fmt: skip
"""Below ``/etc``: hidden."""

HOME_SECRETS = (
    ".haathi", ".config/haathi", ".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".kube",
    ".docker", ".netrc", ".pgpass", ".git-credentials", ".pypirc", ".boto", ".s3cfg",
    ".config/rclone", ".bash_history", ".python_history", ".psql_history",
)  # fmt: skip
"""Below any home directory: hidden."""


@dataclass(frozen=True, slots=True)
class HostView:
    """What of the host a sandbox shows: see the module docstring. Picklable (a Dask worker
    builds its sandboxes from it)."""

    show: tuple[str, ...] = ()  # host paths shown besides the system and the programs
    hide: tuple[str, ...] = ()  # host paths never shown (the store, haathi's config)
    programs: tuple[str, ...] = field(default=())  # the commands' argv[0]
    path: str = ""  # the PATH the programs are looked up on

    def with_programs(self, programs: Iterable[str], path: str) -> HostView:
        """The view that also shows where ``programs`` are installed."""
        return replace(self, programs=tuple(p for p in programs if p), path=path)

    def layout(self, *, unprivileged: bool = False) -> Layout:
        """The host paths to show and to mask, resolved now. ``unprivileged``: user code runs
        as another user, so a directory others may not enter is not shown (it would only
        close off what is shown below it)."""
        shown = [p for p in (*self.show, *_interpreter_dirs(), *self._installs()) if p]
        hidden = _hidden(self.hide, self.show)
        shown = sorted({_real(p) for p in shown if os.path.exists(p)}, key=len)
        shown = [
            p for p in shown
            if not _within(p, hidden) and not _within(p, SYSTEM_DIRS)
            and not _within(p, SANDBOX_OWN[1:]) and p != "/tmp"
            and not (unprivileged and _closed(p))
        ]  # fmt: skip
        roots = [*SYSTEM_DIRS, *shown]
        masks: list[str] = []
        # a hidden symlink is harmless; what it points to is masked where it shows
        hidden = [_real(h) if os.path.islink(h) else h for h in hidden]
        for h in sorted({h for h in hidden if _within(h, roots)}, key=len):
            if os.path.lexists(h) and not _within(h, masks):  # one mask hides what is below
                masks.append(h)
        return Layout(tuple(shown), tuple(masks))

    def _installs(self) -> list[str]:
        found = []
        for program in self.programs:
            where = _which(program, self.path)
            if where is not None:
                found += _install_dirs(where)
        return found


@dataclass(frozen=True, slots=True)
class Layout:
    """A resolved :class:`HostView`: extra host paths to bind, and hidden paths to mask."""

    shown: tuple[str, ...]
    masks: tuple[str, ...]

    def visible(self, path: str) -> bool:
        """Whether ``path`` (absolute) is visible inside the sandbox."""
        if _within(path, SANDBOX_OWN):  # the sandbox's own, but for what is shown in /tmp
            return _within(path, self.shown) and not _within(path, self.masks)
        return _within(path, [*SYSTEM_DIRS, *self.shown]) and not _within(path, self.masks)

    def base_args(self) -> list[str]:
        """bubblewrap options showing the system and the shown paths outside ``/tmp``: they
        come before the sandbox mounts its own ``/dev``, ``/proc`` and ``/tmp``."""
        args: list[str] = []
        for top in SYSTEM_DIRS:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        return args + self._show([p for p in self.shown if not _within(p, ["/tmp"])])

    def late_args(self, empty_dir: str) -> list[str]:
        """bubblewrap options that come after the sandbox's own mounts: the shown paths in
        ``/tmp`` (on top of its private ``/tmp``), then the masks over hidden paths
        (``empty_dir``: an empty directory to mask directories with)."""
        args = self._show([p for p in self.shown if _within(p, ["/tmp"])])
        for path in self.masks:
            source = empty_dir if os.path.isdir(path) else os.devnull
            args += ["--ro-bind", source, path]
        return args

    def _show(self, paths: list[str]) -> list[str]:
        args: list[str] = []
        made: set[str] = set()
        for path in paths:
            # bubblewrap would make the missing parents 0700, closed to an unprivileged user
            for parent in _parents(path):
                if parent not in made and not _within(parent, [*SYSTEM_DIRS, *self.shown]):
                    made.add(parent)
                    args += ["--perms", "0755", "--dir", parent]
            args += ["--ro-bind-try", path, path]
        return args


def _hidden(extra: Iterable[str], shown: Iterable[str]) -> list[str]:
    """Every host path to hide: ``extra`` (absolute and real), ``/etc``'s secrets, and the
    credentials of every home directory and of every ``shown`` one."""
    hidden = [os.path.join("/etc", s) for s in ETC_SECRETS]
    for home in {*_homes(), *shown}:  # a shown directory may be someone's home too
        hidden += [os.path.join(home, s) for s in HOME_SECRETS]
    for path in extra:
        hidden += [os.path.abspath(path), _real(path)]
    return hidden


def _homes() -> set[str]:
    homes = {os.path.expanduser("~"), "/root"}
    with contextlib.suppress(OSError):  # no passwd database: the two above
        homes.update(p.pw_dir for p in pwd.getpwall() if p.pw_dir.startswith("/"))
    return {h for h in homes if h != "/"}


def _interpreter_dirs() -> list[str]:
    """Where the Python that runs the launcher lives."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    dirs.add(os.path.dirname(os.path.dirname(_real(sys.executable))))
    return sorted(dirs)


def _which(program: str, path: str) -> str | None:
    """``program`` resolved as ``execvp`` would on ``path``, as an absolute path."""
    if "/" in program:
        return os.path.abspath(program) if os.path.isfile(program) else None
    for d in (path or os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def _install_dirs(program: str) -> list[str]:
    """What to show for ``program``: its virtualenv (or conda env) when it is in one, else the
    file itself; and where it really is, when it is a link (a virtualenv's ``python`` is a
    link to the interpreter it was made from)."""
    real = _real(program)
    found = []
    for base in (os.path.dirname(os.path.dirname(program)), os.path.dirname(os.path.dirname(real))):
        if os.path.isfile(os.path.join(base, "pyvenv.cfg")) or os.path.isdir(
            os.path.join(base, "conda-meta")
        ):
            found.append(base)
    if not found:
        found.append(program)
    if real != program:
        found.append(os.path.dirname(os.path.dirname(real)) if found[0] != program else real)
    return found


def _closed(path: str) -> bool:
    """A directory other users may not enter."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    return stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH


def _parents(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _within(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)
