"""How a job's user code is isolated: the sandbox or container, and what of the host it shows.

Chosen per job (and per ``reproduce``) from the store's settings, the pipeline's spec and
whether auth is on.

A spec with ``transform.image`` runs in a container of that image (:mod:`haathi.pps.containers`):
the runtime is resolved (``auto`` says what it chose and why), and the image is resolved to its
manifest digest at the job's start: every datum of the job runs that digest, whatever the tag
does meanwhile, and the job records it. A job that cannot get its image or a runtime fails with
the reason; it never falls back to the host. A job whose spec asks for a GPU fails too: haathi
gives jobs none, and never runs one without what it asked for.

Without an image, user code runs in the host sandbox. With auth on, pipelines come from users
who are not the store's owner, so their code runs only in a real sandbox (never ``none``: a job
that cannot get one fails with the reason) and sees only the system, its programs and the
operator's ``sandbox_paths``. With auth off it also sees the working directory of the process
running the job. It never sees the store or haathi's config, tokens and credentials
(:mod:`haathi.pps.hostview`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haathi.auth import activation
from haathi.errors import FailedPrecondition, HaathiError
from haathi.pps import containers, image_cache, images
from haathi.pps.containers import ContainerSpec
from haathi.pps.context import PpsContext
from haathi.pps.hostview import HostView
from haathi.pps.image_sources import PATH_TRANSPORTS, Image
from haathi.pps.sandbox import resolve_sandbox, sandbox_note
from haathi.pps.spec import PipelineSpec
from haathi.pps.transform_spec import Resources


@dataclass(frozen=True, slots=True)
class Isolation:
    """Where a job's datums run: the sandbox (``bwrap`` or ``none``) and what of the host it
    shows, or a ``container``; and a note when ``auto`` chose for a reason worth saying."""

    sandbox: str
    view: HostView
    note: str = ""
    container: ContainerSpec | None = None
    tag_now: str = ""
    """For a re-run by recorded digest: the digest the image's tag names now, when it differs
    (the re-run still used the recorded one)."""

    def describe(self) -> str:
        """For output: ``bwrap``, ``none (no isolation: ...)``, or the runtime and image."""
        if self.container is not None:
            image = self.container.image
            what = f"{self.container.runtime} container of {image.ref} ({image.digest[:19]})"
            return f"{what}; {self.note}" if self.note else what
        return f"{self.sandbox} ({self.note})" if self.note else self.sandbox

    def record(self) -> dict[str, Any]:
        """What a job's context records of it."""
        out: dict[str, Any] = {"sandbox": self.sandbox}
        if self.note:
            out["sandbox_note"] = self.note
        if self.container is not None:
            out["runtime"] = self.container.runtime
            out.update(self.container.image.to_dict())
        return out


def isolation_for(
    ctx: PpsContext, spec: PipelineSpec | None = None, *, ran: dict[str, Any] | None = None
) -> Isolation:
    """The isolation a job of ``spec`` gets now on this store; FailedPrecondition when it
    cannot have what it needs (no runtime or image for an image; auth on and no isolating
    sandbox). ``ran``: a job's recorded context; its image is run by the recorded digest
    (``reproduce``), not by what the tag names now.
    """
    if spec is not None and spec.resources.gpu:
        raise FailedPrecondition(needs_gpu(spec.resources), pipeline=spec.name)
    with ctx.pfs.db.read() as conn:
        auth_on = activation.is_active(conn)
    if spec is not None and spec.transform.image is not None:
        if auth_on and spec.transform.image.startswith(PATH_TRANSPORTS):
            raise FailedPrecondition(
                f"image {spec.transform.image!r}: auth is on, so an image is named (podman's "
                "storage or a registry), not read from a path on this host",
                image=spec.transform.image,
            )
        return _container(ctx, spec, ran or {})
    sandbox = resolve_sandbox(ctx.sandbox, isolate=auth_on)
    show = list(ctx.sandbox_paths)
    if not auth_on:
        with contextlib.suppress(OSError):  # a working directory that is gone shows nothing
            show.append(os.getcwd())
    view = HostView(show=tuple(show), hide=ctx.protected_paths)
    return Isolation(sandbox, view, sandbox_note(ctx.sandbox, sandbox))


def needs_gpu(resources: Resources) -> str:
    """Why a job that asks for a GPU fails here."""
    asked = f"{resources.gpu} {resources.gpu_type or 'GPU'}"
    here = (
        "haathi does not give jobs this machine's GPUs yet"
        if any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()
        else "this machine has none"
    )
    return f"needs a GPU: {here} (the spec asks for {asked})"


def preflight(ctx: PpsContext, spec: PipelineSpec) -> tuple[str, ...]:
    """Warnings for ``create pipeline`` (and ``Client.validate_pipeline``): why this spec's
    jobs would fail here now (no runtime for its image, or the image cannot be found)."""
    return image_notes(ctx.runtime, ctx.image_pull_policy, spec)


def image_notes(runtime: str, pull_policy: str, spec: PipelineSpec) -> tuple[str, ...]:
    """:func:`preflight` on this machine under the settings ``runtime`` and ``pull_policy``
    (a store's; the store itself is not needed)."""
    ref = spec.transform.image
    if ref is None:
        return ()
    try:
        containers.resolve_runtime(runtime)
        images.resolve(ref, pull_policy)  # where it is now; nothing is pulled
    except HaathiError as exc:
        return (f"its jobs will fail until this is fixed: {exc}",)
    return ()


def _container(ctx: PpsContext, spec: PipelineSpec, ran: dict[str, Any]) -> Isolation:
    ref = spec.transform.image
    assert ref is not None
    runtime, note = containers.resolve_runtime(ctx.runtime)
    image, tag_now = _pinned(runtime, ref, ctx.image_pull_policy, ran)
    container = ContainerSpec(
        runtime, image, user=spec.transform.user, network=ctx.allow_network,
        resources=spec.resources,
    )  # fmt: skip
    if runtime == "bwrap":  # unpack (once per host) and check the user before any datum runs
        rootfs, _ = image_cache.unpack(image)
        image_cache.user_ids(rootfs, spec.transform.user or image.config.user)
    if ctx.runtime == "auto":
        note = f"auto chose {runtime}" + (f" ({note})" if note else "")
    return Isolation(runtime, HostView(), note, container, tag_now)


def _pinned(runtime: str, ref: str, pull_policy: str, ran: dict[str, Any]) -> tuple[Image, str]:
    """The image ``ref`` names now; for a job that ``ran``, the image with its recorded
    digest, and a clear error when that is gone (saying where the tag points now). Also the
    digest the tag names now when that differs (``""`` when not)."""
    digest = ran.get("image_digest")
    try:
        now = containers.resolve_image(runtime, ref, pull_policy)
    except FailedPrecondition as exc:
        if digest is None:
            raise
        now, why_now = None, str(exc)
    if digest is None or (now is not None and now.digest == digest):
        assert now is not None
        return now, ""
    if now is not None and now.image_id == ran.get("image_id"):
        # the same image (its config, so its layers' contents) under another manifest: podman
        # keeps a registry's manifest beside its own when the image is pulled back
        return dataclasses.replace(now, digest=digest), ""
    kept = images.kept_image(runtime, ref, digest, ran.get("image_id"))
    if kept is not None:
        return containers.ensure_local(runtime, kept), now.digest if now is not None else "(gone)"
    where = f"the tag now points to {now.digest}" if now is not None else why_now
    raise FailedPrecondition(
        f"image {ref} changed: the job ran {digest}, {where}, and {digest} is no longer "
        "available here", image=ref,
    )  # fmt: skip
