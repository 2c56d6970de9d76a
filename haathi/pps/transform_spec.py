"""The ``transform`` of a pipeline spec (what runs per datum) and its resource limits (a
container's), read from a spec object and written back in Pachyderm's JSON shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from haathi.errors import InvalidArgument
from haathi.pps.secret_spec import SecretRef, parse_secret_refs
from haathi.pps.spec_fields import SpecObject, as_int, as_str, type_name

MAX_EXIT_CODE = 255  # exit statuses are 0-255
_TRANSFORM_FIELDS = frozenset(
    {
        "cmd",
        "stdin",
        "env",
        "image",
        "err_cmd",
        "err_stdin",
        "accept_return_code",
        "working_dir",
        "user",
        "secrets",
    }
)
_PLANNED_TRANSFORM_FIELDS: frozenset[str] = frozenset()
_RESOURCE_FIELDS = frozenset({"cpu", "memory", "gpu", "disk"})
_GPU_FIELDS = frozenset({"type", "number"})
# A memory size: Kubernetes' quantities (512Mi, 1G) and go-units' human sizes (256MB, 4.0 GB),
# as Pachyderm's examples write them: k, M, G, T, P, E (either case, a B or not) are powers
# of 1000, Ki, Mi, Gi, ... (KiB, ...) powers of 1024.
_QUANTITY_RE = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+) ?(?:(?P<prefix>[kmgtpe])(?P<binary>i)?)?b?",
    re.IGNORECASE,
)
_QUANTITY_POWERS = {None: 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
MIN_MEMORY = 4 << 20  # below this no container starts


@dataclass(frozen=True)
class Transform:
    """What to run per datum: ``cmd`` in a container of ``image`` (as ``user``, if given), or
    in the host sandbox when there is no ``image``."""

    cmd: tuple[str, ...]
    stdin: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    err_cmd: tuple[str, ...] = ()
    err_stdin: tuple[str, ...] = ()
    accept_return_code: tuple[int, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    secrets: tuple[SecretRef, ...] = ()  # names only: values never enter the spec

    def to_dict(self) -> dict[str, Any]:
        """The transform in Pachyderm's snake_case JSON shape (empty fields left out)."""
        out: dict[str, Any] = {"cmd": list(self.cmd)}
        for key in ("stdin", "err_cmd", "err_stdin", "accept_return_code"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.env:
            out["env"] = dict(self.env)
        if self.image is not None:
            out["image"] = self.image
        for key in ("working_dir", "user"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.secrets:
            out["secrets"] = [ref.to_dict() for ref in self.secrets]
        return out


@dataclass(frozen=True)
class Resources:
    """``resource_limits`` (else ``resource_requests``): the limits of a container."""

    cpu: float | None = None
    memory: int | None = None  # bytes
    gpu: int = 0  # GPUs a job needs (of either object): haathi gives jobs none
    gpu_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.memory is not None:
            out["memory"] = str(self.memory)
        if self.gpu:
            gpu: dict[str, Any] = {"number": self.gpu}
            if self.gpu_type is not None:
                gpu["type"] = self.gpu_type
            out["gpu"] = gpu
        return out


def parse_transform(top: SpecObject, bounded: bool) -> Transform:
    """The spec's ``transform`` (``bounded``: with the bounds of new specs)."""
    if not top.has("transform"):
        raise InvalidArgument("transform is required")
    tf = SpecObject(
        top.values["transform"], top.where("transform"), _TRANSFORM_FIELDS,
        _PLANNED_TRANSFORM_FIELDS,
    )  # fmt: skip
    cmd = tf.strs("cmd")
    if not cmd:
        raise InvalidArgument(f"{tf.where('cmd')} is required: a non-empty list of strings")
    return Transform(
        cmd=cmd,
        stdin=tf.strs("stdin"),
        env=_env(tf),
        image=tf.get_str("image"),
        err_cmd=tf.strs("err_cmd"),
        err_stdin=tf.strs("err_stdin"),
        accept_return_code=_return_codes(tf, bounded),
        working_dir=tf.get_str("working_dir"),
        user=tf.get_str("user"),
        secrets=parse_secret_refs(tf),
    )


def _env(tf: SpecObject) -> tuple[tuple[str, str], ...]:
    env = tf.values.get("env", {})
    where = tf.where("env")
    if not isinstance(env, dict):
        raise InvalidArgument(f"{where} must be an object of strings, got {type_name(env)}")
    pairs = [(as_str(k, f"{where} key"), as_str(v, f"{where}.{k}")) for k, v in env.items()]
    return tuple(sorted(pairs))


def _return_codes(tf: SpecObject, bounded: bool) -> tuple[int, ...]:
    codes = tf.values.get("accept_return_code", [])
    where = tf.where("accept_return_code")
    if not isinstance(codes, list):
        raise InvalidArgument(f"{where} must be a list of integers, got {type_name(codes)}")
    out = tuple(as_int(c, f"{where}[{i}]") for i, c in enumerate(codes))
    for i, code in enumerate(out):
        if bounded and not 0 <= code <= MAX_EXIT_CODE:
            raise InvalidArgument(
                f"{where}[{i}] must be an exit code between 0 and {MAX_EXIT_CODE}, got {code}"
            )
    return out


def resource_notes(top: SpecObject, transform: Transform) -> tuple[str, ...]:
    """What of the spec's resource fields haathi accepts but does not apply (the fields are
    valid: :func:`parse_resources` checked them)."""
    notes = []
    for key in ("resource_limits", "resource_requests"):
        if not top.has(key):
            continue
        obj = SpecObject(top.values[key], top.where(key), _RESOURCE_FIELDS)
        if obj.has("disk"):
            notes.append(
                f"{obj.where('disk')} is not enforced (containers write only "
                "/pfs/out and /tmp, in the scratch directory)"
            )
        if _resource_object(obj).gpu:
            notes.append(
                f"{obj.where('gpu')}: haathi gives jobs no GPU, so this pipeline's jobs will "
                "fail (needs a GPU)"
            )
    if transform.image is None and (top.has("resource_limits") or top.has("resource_requests")):
        notes.append("resource limits apply only to a pipeline with transform.image (a container)")
    return tuple(notes)


def parse_resources(top: SpecObject, transform: Transform) -> Resources:
    """``resource_limits``, else ``resource_requests`` (a container's limits: haathi reserves
    nothing, so a request is the closest thing to a limit it can enforce); both are checked,
    and a GPU asked for in either is needed."""
    if transform.user is not None and not transform.user.strip():
        raise InvalidArgument(f"{top.where('transform')}.user must not be empty")
    parsed = {
        key: _resource_object(SpecObject(top.values[key], top.where(key), _RESOURCE_FIELDS))
        for key in ("resource_limits", "resource_requests")
        if top.has(key)
    }
    if not parsed:
        return Resources()
    chosen = parsed.get("resource_limits") or parsed["resource_requests"]
    gpu = max(parsed.values(), key=lambda r: r.gpu)
    return Resources(chosen.cpu, chosen.memory, gpu.gpu, gpu.gpu_type)


def _resource_object(obj: SpecObject) -> Resources:
    cpu = memory = None
    if obj.has("cpu"):
        value = obj.values["cpu"]
        try:
            cpu = (
                float(value[:-1]) / 1000
                if isinstance(value, str) and value.endswith("m")
                else float(value)
            )
        except (TypeError, ValueError):
            cpu = -1.0
        if isinstance(value, bool) or not 0 < cpu <= 1024:
            raise InvalidArgument(
                f"{obj.where('cpu')} must be a number of CPUs above 0 "
                f'(e.g. 0.5, 2 or "500m"), got {value!r}'
            )
    if obj.has("memory"):
        memory = _quantity(obj.values["memory"], obj.where("memory"))
    gpu, gpu_type = _gpu(obj) if obj.has("gpu") else (0, None)
    return Resources(cpu, memory, gpu, gpu_type)


def _gpu(obj: SpecObject) -> tuple[int, str | None]:
    """A ``gpu`` object: ``{"type": "nvidia.com/gpu", "number": 1}`` (type optional)."""
    spec = SpecObject(obj.values["gpu"], obj.where("gpu"), _GPU_FIELDS)
    number = spec.get_int("number", 0)
    if number < 0:
        raise InvalidArgument(f"{spec.where('number')} must be >= 0, got {number}")
    return number, spec.get_str("type")


def _quantity(value: Any, where: str) -> int:
    """A memory size in bytes: ``512Mi``, ``1G``, ``256MB``, ``1000``."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    found = _QUANTITY_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    size = 0
    if found is not None:
        base = 1024 if found["binary"] else 1000
        power = _QUANTITY_POWERS[found["prefix"].lower() if found["prefix"] else None]
        size = int(float(found["number"]) * base**power)
    if size < MIN_MEMORY:
        raise InvalidArgument(
            f"{where} must be a memory size of at least 4Mi, like 512Mi, 1G or 256MB, got {value!r}"
        )
    return size
