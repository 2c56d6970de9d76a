"""The ``spout`` and ``service`` fields of a pipeline spec, and Pachyderm's rules on them.

A **spout** (``"spout": {}``) has no input: its long-lived program writes commits to its own
output repo itself. A **service** (``"service": {"internal_port": 8000, "external_port":
31800}``) serves its input's single datum on ``internal_port``, published on the host's
loopback at ``external_port`` (any free port when it is left out). A spout may publish a port
too (``"spout": {"service": {...}}``). How they run: :mod:`haathi.pps.daemons`.

Kubernetes' service ``type`` (ClusterIP, LoadBalancer, NodePort; Pachyderm's default
NodePort) is accepted with a note when it is not NodePort: haathi publishes every service on
``127.0.0.1``. The refusals are Pachyderm's, in its words where it has them
(``validatePipeline`` and ``validateCreatePipelineRequest`` in
``src/server/pps/server/api_server.go``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haathi.errors import InvalidArgument
from haathi.pps.input_spec import Input, PfsInput, walk_inputs
from haathi.pps.spec_fields import SpecObject, as_int

SERVICE_TYPES = ("ClusterIP", "LoadBalancer", "NodePort")
DEFAULT_SERVICE_TYPE = "NodePort"
MAX_PORT = 65535
_SERVICE_FIELDS = frozenset({"internal_port", "external_port", "ip", "type"})
_SPOUT_FIELDS = frozenset({"service"})

SPOUT_INPUT = "spout pipelines (without a service) must not have an input"
SPOUT_AUTOSCALING = "autoscaling can't be used with spouts (spouts aren't triggered externally)"
DAEMON_S3_OUT = "s3 output is not supported in spouts or services"
SERVICE_PARALLELISM = "services can only be run with a constant parallelism of 1"


@dataclass(frozen=True)
class Service:
    """A port to publish: ``internal_port`` inside the sandbox, on the host's
    ``127.0.0.1:external_port`` (0: any free port, chosen when it starts)."""

    internal_port: int
    external_port: int = 0
    type: str = DEFAULT_SERVICE_TYPE
    ip: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"internal_port": self.internal_port}
        if self.external_port:
            out["external_port"] = self.external_port
        if self.ip:
            out["ip"] = self.ip
        out["type"] = self.type
        return out


@dataclass(frozen=True)
class Spout:
    """A spout, publishing ``service`` if it has one."""

    service: Service | None = None

    def to_dict(self) -> dict[str, Any]:
        return {} if self.service is None else {"service": self.service.to_dict()}


def parse_spout(top: SpecObject) -> Spout | None:
    """The spec's ``spout`` (None without one)."""
    if not top.has("spout"):
        return None
    obj = SpecObject(top.values["spout"], top.where("spout"), _SPOUT_FIELDS)
    return Spout(_service(obj, "service"))


def parse_service(top: SpecObject) -> Service | None:
    """The spec's ``service`` (None without one)."""
    return _service(top, "service")


def _service(parent: SpecObject, key: str) -> Service | None:
    if not parent.has(key):
        return None
    obj = SpecObject(parent.values[key], parent.where(key), _SERVICE_FIELDS)
    if not obj.has("internal_port"):
        raise InvalidArgument(
            f"{obj.where('internal_port')} is required: the port the service listens on"
        )
    kind = obj.get_str("type") or DEFAULT_SERVICE_TYPE
    if kind not in SERVICE_TYPES:
        raise InvalidArgument(f"the following service type {kind} is not allowed")
    return Service(
        internal_port=_port(obj, "internal_port", 1),
        external_port=_port(obj, "external_port", 0),
        type=kind,
        ip=obj.get_str("ip") or "",
    )


def _port(obj: SpecObject, key: str, low: int) -> int:
    if not obj.has(key):
        return 0
    port = as_int(obj.values[key], obj.where(key))
    if not low <= port <= MAX_PORT:
        raise InvalidArgument(f"{obj.where(key)} must be between {low} and {MAX_PORT}, got {port}")
    return port


def check_daemon(top: SpecObject, spout: Spout | None, service: Service | None) -> None:
    """Pachyderm's rules on a spout or a service (the spec's ``input`` is checked by
    :func:`check_input`)."""
    if spout is None and service is None:
        return
    if spout is not None and service is not None:
        raise InvalidArgument(
            "a pipeline is a spout or a service, not both (a spout that serves a port has "
            "spout.service)"
        )
    if top.get_bool("s3_out"):
        raise InvalidArgument(DAEMON_S3_OUT)
    if spout is not None and top.get_bool("autoscaling"):
        raise InvalidArgument(SPOUT_AUTOSCALING)
    if service is not None and top.has("parallelism_spec"):
        spec = top.values["parallelism_spec"]
        if isinstance(spec, dict) and spec.get("constant", 0) not in (1, "1"):
            raise InvalidArgument(SERVICE_PARALLELISM)
    if top.has("egress"):
        raise InvalidArgument(
            f"{top.where('egress')} is not supported in spouts or services: a spout writes its "
            "commits itself, and a service writes none"
        )


def check_input(top: SpecObject, spout: Spout | None, service: Service | None) -> None:
    """A spout has no input (haathi runs none for a spout with a service either); a service
    has one, and reads it from ``/pfs``."""
    if spout is not None and top.has("input"):
        raise InvalidArgument(
            SPOUT_INPUT if spout.service is None else f"{SPOUT_INPUT} (nor, here, with one)"
        )
    if service is not None and not top.has("input"):
        raise InvalidArgument("input is required: a service serves its input's single datum")


def check_service_input(inp: Input) -> None:
    """A service reads its datum from ``/pfs``: no input of it is an S3 bucket."""
    for leaf in walk_inputs(inp):
        if isinstance(leaf, PfsInput) and leaf.s3:
            raise InvalidArgument(
                f"input {leaf.name}: s3 inputs are not supported in services (read the datum "
                "from /pfs)"
            )


def daemon_notes(spout: Spout | None, service: Service | None) -> tuple[str, ...]:
    """What a spout's or service's spec asks that haathi does differently."""
    published = service or (spout.service if spout is not None else None)
    where = "service" if service is not None else "spout.service"
    if published is None:
        return ()
    notes = []
    if published.type != DEFAULT_SERVICE_TYPE:
        notes.append(
            f"{where}.type {published.type}: haathi publishes every service on 127.0.0.1, "
            "whatever its type"
        )
    if published.ip:
        notes.append(f"{where}.ip is ignored: haathi publishes the service on 127.0.0.1")
    return tuple(notes)
