"""Running a datum set in a container of its pipeline's image.

A spec with ``transform.image`` runs in a container of that image, chosen among
:data:`RUNTIMES` (``--runtime`` / ``HAATHI_RUNTIME`` / ``[pipelines] runtime``):

``bwrap`` (daemonless)
    bubblewrap over the image's root filesystem, unpacked once per host into a cache keyed by
    the manifest digest (:mod:`haathi.pps.image_cache`) and shown read-only.
``podman`` / ``docker``
    ``podman run`` (``docker run``: the same CLI) of the image, by its image ID, with a
    read-only root filesystem.
``auto``
    ``bwrap`` when bubblewrap, skopeo and umoci work here, else ``podman``, else ``docker``.

Either way the container has the image's root as ``/``, ``/pfs`` read-only with the current
datum's inputs, ``/pfs/out`` and ``/tmp`` writable (the datum set's own: ``/tmp`` lasts from
datum to datum within a set, as in a Pachyderm worker), a fresh ``/dev`` and ``/proc``, no
network unless allowed, and the image's ``Env``, ``WorkingDir`` and ``User`` (``transform.env``,
``working_dir`` and ``user`` override them; the ``ENTRYPOINT`` is ignored and ``cmd`` runs, as
in a Pachyderm worker). One container serves the whole datum set: its PID 1 is haathi's
launcher (:mod:`haathi.pps.launcher`), run by the *host's* Python mounted read-only at
``/.haathi/host`` (so the image needs no Python), which starts each datum's command.

When haathi runs as root, the daemonless runtime never runs user code as the host's root: an
image whose user is root runs as ``nobody`` (65534), other users as their own IDs; with podman,
the image's user is podman's business (rootful podman: root in the container, with podman's
dropped capabilities and seccomp profile).
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import struct
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from haathi.errors import FailedPrecondition, InvalidArgument
from haathi.pps import image_cache, images
from haathi.pps.bwrap import UNPRIVILEGED, mount_args
from haathi.pps.image_sources import TOOL_TIMEOUT, Image, tools_missing
from haathi.pps.sandbox import Sandbox, probe_bwrap
from haathi.pps.session import SOCKET_DIR, SOCKET_MOUNT, Launch, launcher_argv
from haathi.pps.transform_spec import Resources

RUNTIMES = ("auto", "bwrap", "podman", "docker")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` in a container whose image sets none (as Docker does)."""
NPROC = 4096
"""The most processes a podman/docker container may have (some hosts refuse more)."""
HOST = "/.haathi/host"
"""Where the host's Python (and the libraries it needs) shows inside a container."""


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What a datum set's container is: picklable, so a Dask worker builds the same one."""

    runtime: str  # bwrap | podman | docker (resolved, never auto)
    image: Image
    user: str | None = None  # transform.user; None: the image's
    network: bool = False
    resources: Resources = field(default_factory=Resources)

    def env(self) -> dict[str, str]:
        """The image's environment, with a default ``PATH`` and ``HOME`` (``/``)."""
        env = dict(self.image.config.env)
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", "/")
        return env


# ---------------------------------------------------------------------------------------------
# Choosing a runtime

_probe_lock = threading.Lock()


@functools.cache
def _why_not_cached(runtime: str) -> str:
    if runtime == "bwrap":
        bwrap, why = probe_bwrap()
        return why if bwrap is None else tools_missing()
    tool = shutil.which(runtime)
    if tool is None:
        return f"{runtime} is not on PATH (install the {runtime} package)"
    try:  # `version` asks the engine too (docker's daemon, podman's storage): ~50 ms, where
        # `info` took 300-600 ms of every CLI job's start (measured in issue 15)
        done = subprocess.run(
            [*_cli(runtime), "version"], capture_output=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{runtime} version: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return f"{runtime} cannot run containers here: {lines[-1] if lines else done.returncode}"
    return ""


def why_not(runtime: str) -> str:
    """Why ``runtime`` cannot run containers here (``""``: it can); checked once per
    process."""
    with _probe_lock:
        return _why_not_cached(runtime)


def resolve_runtime(requested: str) -> tuple[str, str]:
    """(runtime, note): ``auto`` becomes the first of ``bwrap``, ``podman``, ``docker`` that
    works here, and the note says why the ones before it do not. FailedPrecondition, saying
    what to install, when the requested runtime (or none, for ``auto``) can run here."""
    if requested not in RUNTIMES:
        raise InvalidArgument(
            f"unknown runtime {requested!r} (expected one of {', '.join(RUNTIMES)})",
            runtime=requested,
        )
    candidates = RUNTIMES[1:] if requested == "auto" else (requested,)
    reasons: list[str] = []
    for runtime in candidates:
        why = why_not(runtime)
        if not why:
            return runtime, "; ".join(reasons)
        reasons.append(f"{runtime}: {why}")
    raise FailedPrecondition(
        "no container runtime can run the pipeline's image here ("
        + "; ".join(reasons)
        + "): install bubblewrap, skopeo and umoci, or podman",
        runtime=requested,
    )


def resolve_image(runtime: str, ref: str, pull_policy: str) -> Image:
    """The image ``ref`` names now, as ``runtime`` will run it: for podman and docker, in
    their own storage (pulled or loaded there first if need be)."""
    return ensure_local(runtime, images.resolve(ref, pull_policy))


def ensure_local(runtime: str, image: Image) -> Image:
    """``image``, in podman's or docker's own storage (pulled or loaded there first if need
    be) when ``runtime`` is one of them: they run it by its image ID."""
    if runtime == "bwrap" or image.source.startswith(f"{_STORAGE[runtime]}:"):
        return image
    if runtime == "docker" and not image.source.startswith("docker://"):
        raise FailedPrecondition(
            f"image {image.ref!r} is in {image.source.split(':', 1)[0]}, not in docker's "
            "storage: docker load it, or use the podman or bwrap runtime"
        )
    if not isinstance(_run_cli(runtime, "image", "inspect", image.image_id), str):
        return image  # already there, under whatever name: run by its ID, change nothing
    pulled = _run_cli(runtime, "pull", "--quiet", image.source)
    if isinstance(pulled, str):
        raise FailedPrecondition(
            f"{runtime} cannot pull image {image.ref!r}: {pulled}", image=image.ref
        )
    return image


_STORAGE = {"podman": "containers-storage", "docker": "docker-daemon", "bwrap": ""}


def _cli(runtime: str) -> list[str]:
    """The runtime's command with the global options this host needs (the one place for host
    quirks): ``--cgroup-manager=cgroupfs`` where systemd is not running, and podman's
    ``--runtime runc`` where crun is missing."""
    argv = [runtime]
    if runtime == "podman":
        if not os.path.isdir("/run/systemd/system"):
            argv.append("--cgroup-manager=cgroupfs")
        if shutil.which("crun") is None and shutil.which("runc") is not None:
            argv += ["--runtime", "runc"]
    return argv


def _ulimits() -> list[str]:
    """Explicit limits for a container (the other host quirk): the runtime's defaults may be
    above what this host lets a process set ("error setting rlimit"), so the container gets
    haathi's own open-files limit and at most :data:`NPROC` processes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = NPROC if nproc == resource.RLIM_INFINITY else min(nproc, NPROC)
    return [f"--ulimit=nofile={soft}:{hard}", f"--ulimit=nproc={nproc}:{nproc}"]


def _run_cli(runtime: str, *args: str) -> bytes | str:
    """The runtime's output, or its last line of error."""
    try:
        done = subprocess.run(
            [*_cli(runtime), *args], capture_output=True, timeout=TOOL_TIMEOUT,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    return done.stdout


# ---------------------------------------------------------------------------------------------
# The host's Python, inside


@dataclass(frozen=True)
class _HostPython:
    binds: tuple[str, ...]  # host directories (and the loader) shown at HOST + path
    argv: tuple[str, ...]  # runs the interpreter inside


@functools.cache
def _host_python() -> _HostPython:
    """How the host's interpreter runs inside a foreign root: through the host's dynamic
    loader, with the host's library directories, all under :data:`HOST`."""
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    prefix = os.path.realpath(sys.base_prefix)
    loader = elf_interpreter(exe)
    libdirs = [os.path.dirname(os.path.realpath(loader)), os.path.join(prefix, "lib")]
    for d in ("/lib64", "/usr/lib64", "/lib", "/usr/lib"):
        for sub in (d, os.path.join(d, os.path.basename(libdirs[0]))):
            if os.path.isdir(sub) and os.path.realpath(sub) not in libdirs:
                libdirs.append(os.path.realpath(sub))
    binds = [os.path.realpath(loader), prefix, *libdirs]
    if not exe.startswith(prefix + "/"):
        binds.append(exe)
    lib_path = ":".join(HOST + d for d in libdirs)
    return _HostPython(
        tuple(dict.fromkeys(b for b in binds if os.path.exists(b))),
        (HOST + os.path.realpath(loader), "--library-path", lib_path, HOST + exe),
    )


def elf_interpreter(exe: str) -> str:
    """The dynamic loader an ELF executable names (PT_INTERP)."""
    with open(exe, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            raise FailedPrecondition(f"{exe}: not a 64-bit ELF executable")
        order = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ptype, _flags, offset, _vaddr, _paddr, size = struct.unpack(
                order + "IIQQQQ", f.read(40)
            )
            if ptype == 3:  # PT_INTERP
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    raise FailedPrecondition(f"{exe} names no dynamic loader: cannot run it in a container")


# ---------------------------------------------------------------------------------------------
# Launching


class _BwrapImage(Launch):
    """bubblewrap over an unpacked root filesystem."""

    kind = "bwrap"

    def __init__(
        self, spec: ContainerSpec, rootfs: Path, bwrap: str, mounts: tuple[tuple[str, str], ...]
    ) -> None:
        self.spec, self.rootfs, self.bwrap, self.mounts = spec, rootfs, bwrap, mounts
        user = spec.user if spec.user is not None else spec.image.config.user
        self.ids = image_cache.user_ids(rootfs, user)
        self.root = os.geteuid() == 0
        self.owner = (UNPRIVILEGED if self.ids[0] == 0 else self.ids) if self.root else None

    def argv(self, scratch: Path, sock_fd: int, info_fd: int) -> list[str]:
        argv = [self.bwrap]
        present = ["/tmp", HOST]
        with os.scandir(self.rootfs) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name in ("dev", "proc", "tmp", "pfs", ".haathi"):
                    continue
                inside = "/" + entry.name
                present.append(inside)
                if entry.is_symlink():
                    argv += ["--symlink", os.readlink(entry.path), inside]
                else:
                    argv += ["--ro-bind", entry.path, inside]
        argv += ["--dev", "/dev", "--proc", "/proc", "--bind", str(scratch / "tmp"), "/tmp"]
        pfs = scratch / "pfs"
        argv += ["--ro-bind", str(pfs), "/pfs", "--bind", str(pfs / "out"), "/pfs/out"]
        argv += ["--perms", "0755", "--dir", "/.haathi"]  # the launcher may be another user
        argv += ["--ro-bind", str(scratch / SOCKET_DIR), SOCKET_MOUNT]
        for path in _host_python().binds:
            argv += ["--ro-bind", path, HOST + path]
        argv += mount_args(self.mounts, present)
        argv += ["--remount-ro", "/", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not self.spec.network:
            argv.append("--unshare-net")
        argv += ["--die-with-parent", "--as-pid-1", "--chdir", "/", "--hostname", "haathi"]
        if self.root:  # the launcher needs these to become the image's user, then has none
            argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        elif self.ids != (os.getuid(), os.getgid()):
            argv += ["--unshare-user", "--uid", str(self.ids[0]), "--gid", str(self.ids[1])]
        argv += ["--info-fd", str(info_fd), "--"]
        return argv + launcher_argv(_host_python().argv, str(sock_fd), self.owner)

    def cwd(self, working_dir: str | None) -> str:
        return working_dir or self.spec.image.config.working_dir or "/"


class _Cli(Launch):
    """``podman run`` / ``docker run`` of the image."""

    listens = True
    info_fd = False

    def __init__(self, spec: ContainerSpec, mounts: tuple[tuple[str, str], ...]) -> None:
        self.spec = spec
        self.kind = spec.runtime
        self.name = f"haathi-{uuid.uuid4().hex[:16]}"
        self.mounts = mounts

    def argv(self, scratch: Path, sock_fd: int, info_fd: int) -> list[str]:
        for sub in ("tmp", "pfs/out"):  # the image's user, whoever it is, writes there
            os.chmod(scratch / sub, 0o1777 if sub == "tmp" else 0o777)
        for host, _ in self.mounts:  # ... and reads its secrets (only this container sees them)
            os.chmod(host, 0o755)
            for entry in os.scandir(host):
                os.chmod(entry.path, 0o444)
        spec = self.spec
        argv = [*_cli(spec.runtime), "run", "--rm", "--name", self.name, "--read-only"]
        if spec.runtime == "podman":
            argv += ["--read-only-tmpfs=false", "--pull=never"]
        argv += ["--network", "host" if spec.network else "none", "--hostname", "haathi"]
        argv += _ulimits()
        pfs = scratch / "pfs"
        argv += ["-v", f"{scratch / 'tmp'}:/tmp", "-v", f"{pfs}:/pfs:ro"]
        argv += ["-v", f"{pfs / 'out'}:/pfs/out", "-v", f"{scratch / SOCKET_DIR}:{SOCKET_MOUNT}"]
        for host, inside in self.mounts:
            argv += ["-v", f"{host}:{inside}:ro"]
        for path in _host_python().binds:
            argv += ["-v", f"{path}:{HOST}{path}:ro"]
        if spec.user is not None:
            argv += ["--user", spec.user]
        if spec.resources.cpu:
            argv += ["--cpus", f"{spec.resources.cpu:g}"]
        if spec.resources.memory:
            argv += ["--memory", str(spec.resources.memory)]
        python = _host_python().argv
        argv += ["--entrypoint", python[0], spec.image.image_id.removeprefix("sha256:")]
        return argv + launcher_argv(python[1:], f"{SOCKET_MOUNT}/launcher.sock", None)

    def env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "DOCKER_HOST")  # fmt: skip
        return {k: os.environ[k] for k in keep if k in os.environ}

    def cwd(self, working_dir: str | None) -> str:
        return working_dir or self.spec.image.config.working_dir or "/"

    def stop(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [*_cli(self.spec.runtime), "rm", "--force", "--time", "0", self.name],
                capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
            )  # fmt: skip


def open_container(
    spec: ContainerSpec, scratch: Path, mounts: tuple[tuple[str, str], ...] = ()
) -> Sandbox:
    """A :class:`~haathi.pps.sandbox.Sandbox` running user code in a container of
    ``spec.image`` (unpacked first if the daemonless runtime needs it), showing ``mounts``
    (host directory, path inside) read-only."""
    if spec.runtime == "bwrap":
        bwrap = probe_bwrap()[0]
        if bwrap is None:
            raise FailedPrecondition(f"bubblewrap cannot run here: {probe_bwrap()[1]}")
        rootfs = image_cache.cached_rootfs(spec.image.digest)
        if rootfs is None:
            rootfs, _ = image_cache.unpack(spec.image)
        return Sandbox("bwrap", scratch, launch=_BwrapImage(spec, rootfs, bwrap, mounts))
    return Sandbox(spec.runtime, scratch, launch=_Cli(spec, mounts))
