"""Secret operations of the Api: create, inspect, list and delete (cluster admins only, as
Pachyderm's ``secretAdmin`` is part of ``clusterAdmin``), and the check of a pipeline's
``transform.secrets`` before it is created."""

from __future__ import annotations

from typing import Any

from haathi.errors import PermissionDenied
from haathi.models.auth import Caller, Permission
from haathi.models.secret import SecretInfo, parse_secret
from haathi.pfs.context import PfsContext, now
from haathi.pps import egress, secrets
from haathi.pps.context import PpsContext
from haathi.pps.spec import PipelineSpec


class SecretApi:
    """Mixed into :class:`haathi.api.service.Api`."""

    pfs: PfsContext
    pps: PpsContext
    caller: Caller | None

    def authorize(self, permission: Permission, *repos: str) -> None:  # AccessApi's
        raise NotImplementedError

    def _is_admin(self) -> bool:  # AccessApi's
        raise NotImplementedError

    def _subject(self) -> str:  # AccessApi's
        raise NotImplementedError

    def create_secret(self, doc: dict[str, Any]) -> SecretInfo:
        """Store a secret from a Kubernetes Secret document, encrypted (cluster admins)."""
        self.authorize(Permission.ADMIN)
        parsed = parse_secret(doc)
        with self.pfs.db.write() as conn:
            return secrets.create_secret(
                conn, parsed, secrets.key_path(self.pps), now(), self._subject()
            )

    def inspect_secret(self, name: str) -> SecretInfo:
        """A secret's name, type, key names and creation time (cluster admins)."""
        self.authorize(Permission.ADMIN)
        with self.pfs.db.read() as conn:
            return secrets.inspect_secret(conn, name)

    def list_secret(self) -> list[SecretInfo]:
        """Every secret, by name (cluster admins)."""
        self.authorize(Permission.ADMIN)
        with self.pfs.db.read() as conn:
            return secrets.list_secrets(conn)

    def delete_secret(self, name: str) -> None:
        """Delete a secret (cluster admins); later jobs of pipelines using it fail."""
        self.authorize(Permission.ADMIN)
        with self.pfs.db.write() as conn:
            secrets.delete_secret(conn, name)

    def _check_secrets(self, spec: PipelineSpec) -> None:
        """Before creating or updating ``spec``: every secret it names exists (with the keys
        its variables and its egress read); with auth on, only a cluster admin may name
        secrets at all, since the pipeline's code can print what it reads, nor make a
        pipeline with egress, which writes outside haathi with the server's credentials or a
        secret's."""
        refs = spec.transform.secrets
        if not refs and spec.egress is None:
            return
        if self.caller is not None and not self._is_admin():
            what = "uses secrets" if refs else "has egress"
            why = "its code can read them" if refs else "it writes outside haathi as the server"
            raise PermissionDenied(
                f"{self.caller.subject} may not create a pipeline that {what}: with auth on, "
                f"only cluster admins may ({why})",
                subject=self.caller.subject,
            )
        with self.pfs.db.read() as conn:
            secrets.check_refs(conn, refs)
            if spec.egress is not None:
                egress.check_secret(conn, spec.egress)
