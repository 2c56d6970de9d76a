"""``haathi auth ...``: activation, login, tokens and role bindings, as ``pachctl auth``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from haathi.cli import render
from haathi.cli.main import OutputOpt, ProjectOpt, app, client, state
from haathi.cli.render import Output
from haathi.cli.units import parse_duration
from haathi.client import session
from haathi.client.client import is_server_address
from haathi.config import resolve_address
from haathi.errors import InvalidArgument
from haathi.models.auth import RoleBindings

auth_app = typer.Typer(
    help="Access control of a server: tokens, logins and roles.", no_args_is_help=True
)
set_app = typer.Typer(
    help="Set a subject's roles on a repo, a project or the cluster.", no_args_is_help=True
)
get_app = typer.Typer(
    help="Show the role bindings of a repo, a project or the cluster.", no_args_is_help=True
)
check_app = typer.Typer(
    help="Show what you (or a subject) may do on a repo or a project.", no_args_is_help=True
)
app.add_typer(auth_app, name="auth")
auth_app.add_typer(set_app, name="set")
auth_app.add_typer(get_app, name="get")
auth_app.add_typer(check_app, name="check")

Ttl = Annotated[
    str | None,
    typer.Option("--ttl", help="how long the token is valid (e.g. 1h); default: until revoked"),
]


def _ttl(ttl: str | None) -> float | None:
    return None if ttl is None else parse_duration(ttl)


def _server_address() -> str:
    address = resolve_address(state.address)
    if not is_server_address(address):
        raise InvalidArgument(
            f"{address} is a store directory: log in to a server (--address http://HOST:PORT "
            "or HAATHI_ADDRESS); embedded access needs no token"
        )
    return address


def _print_token(token: str, output: Output, key: str = "token") -> None:
    if output == Output.json:
        render.emit_json({key: token})
    else:
        render.out.print(token, markup=False)


@auth_app.command("activate")
def activate(output: OutputOpt = Output.table) -> None:
    """Turn auth on. Prints the root token once (and, on a server, logs you in with it)."""
    token = client().auth_activate()
    address = resolve_address(state.address)
    if is_server_address(address):
        session.save_token(address, token)
    if output == Output.json:
        render.emit_json({"root_token": token})
        return
    render.out.print("Auth is activated. The root token (haathi:root) is shown only this once:")
    render.out.print(token, markup=False)


@auth_app.command("deactivate")
def deactivate() -> None:
    """Turn auth off (cluster admins): every token and role binding is dropped."""
    client().auth_deactivate()
    render.out.print("Auth is deactivated.")


@auth_app.command("login")
def login(
    token: Annotated[
        str | None,
        typer.Option("--token", "-t", help="the token ('-' or absent: read it from stdin)"),
    ] = None,
) -> None:
    """Log in to the server with a token (from an admin: get-auth-token / get-robot-token)."""
    address = _server_address()
    if token is None or token == "-":
        token = (typer.prompt("token", hide_input=True) if sys.stdin.isatty()
                 else sys.stdin.readline()).strip()  # fmt: skip
    if not token:
        raise InvalidArgument("no token given")
    from haathi.client import connect

    with connect(address, token=token) as c:
        who = c.whoami()["subject"]
    path = session.save_token(address, token)
    render.out.print(f"Logged in to {address} as {who} (token saved in {path}).", markup=False)


@auth_app.command("logout")
def logout() -> None:
    """Forget the token saved for the server (it stays valid until revoked)."""
    address = _server_address()
    gone = session.forget_token(address)
    render.out.print(
        f"Logged out of {address}." if gone else f"Not logged in to {address}.", markup=False
    )


@auth_app.command("whoami")
def whoami(output: OutputOpt = Output.table) -> None:
    """Who the server knows you as."""
    who = client().whoami()
    if output == Output.json:
        render.emit_json(who)
        return
    admin = " (cluster admin)" if who["cluster_admin"] else ""
    render.out.print(f"You are logged in as {who['subject']}{admin}", markup=False)


@auth_app.command("get-robot-token")
def get_robot_token(
    robot: Annotated[str, typer.Argument(help="the robot's name (robot:NAME)")],
    ttl: Ttl = None,
    output: OutputOpt = Output.table,
) -> None:
    """Make a token for a robot user, e.g. for CI (cluster admins)."""
    _print_token(client().get_robot_token(robot, ttl_s=_ttl(ttl)), output)


@auth_app.command("get-auth-token")
def get_auth_token(
    subject: Annotated[str, typer.Argument(help="user:NAME (a bare NAME is a user)")],
    ttl: Ttl = None,
    output: OutputOpt = Output.table,
) -> None:
    """Make a token for a user (cluster admins, or for yourself)."""
    _print_token(client().get_auth_token(subject, ttl_s=_ttl(ttl)), output)


@auth_app.command("revoke")
def revoke(
    token: Annotated[str | None, typer.Option("--token", help="revoke this token")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="revoke every token of this subject")
    ] = None,
) -> None:
    """Revoke a token, or every token of a subject."""
    n = client().revoke_token(token, subject=user)
    render.out.print(f"Revoked {n} token{'s' if n != 1 else ''}.")


def _bindings(b: RoleBindings, output: Output) -> None:
    if output == Output.json:
        render.emit_json(b)
        return
    table = Table("SUBJECT", "ROLES", box=None)
    for subject, roles in b.bindings.items():
        table.add_row(subject, ",".join(roles))
    render.out.print(table)


Roles = Annotated[
    str, typer.Argument(help="repoReader, repoWriter, repoOwner (comma-separated), or none")
]
Subject = Annotated[
    str, typer.Argument(help="user:NAME, robot:NAME, pipeline:NAME or allClusterUsers")
]
WhoseAccess = Annotated[str | None, typer.Argument(help="whose access (default: yours)")]


@set_app.command("repo")
def set_repo(
    repo: str,
    roles: Roles,
    subject: Subject,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Make ROLES what SUBJECT holds on REPO (repo owners)."""
    _bindings(client(project).set_repo_roles(repo, roles, subject), output)


@get_app.command("repo")
def get_repo(repo: str, project: ProjectOpt = None, output: OutputOpt = Output.table) -> None:
    """Who holds which roles on REPO."""
    _bindings(client(project).get_repo_roles(repo), output)


def _access(subject: str, where: str, roles: list[str], permissions: list[str]) -> None:
    render.out.print(
        f"{subject} on {where}: roles {', '.join(roles) or 'none'}; "
        f"may {', '.join(permissions) or 'do nothing'}",
        markup=False,
    )


@check_app.command("repo")
def check_repo(
    repo: str,
    subject: WhoseAccess = None,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Your roles and permissions on REPO (or SUBJECT's, for the repo's owners)."""
    access = client(project).check_repo(repo, subject)
    if output == Output.json:
        render.emit_json(access)
        return
    _access(access.subject, access.repo, access.roles, access.permissions)


ProjectRoles = Annotated[
    str,
    typer.Argument(
        help="projectViewer, projectWriter, projectOwner, or repo roles for all its repos "
        "(comma-separated), or none"
    ),
]


@set_app.command("project")
def set_project(
    project: str, roles: ProjectRoles, subject: Subject, output: OutputOpt = Output.table
) -> None:
    """Make ROLES what SUBJECT holds on PROJECT (project owners)."""
    _bindings(client().set_project_roles(project, roles, subject), output)


@get_app.command("project")
def get_project(project: str, output: OutputOpt = Output.table) -> None:
    """Who holds which roles on PROJECT."""
    _bindings(client().get_project_roles(project), output)


@check_app.command("project")
def check_project(
    project: str, subject: WhoseAccess = None, output: OutputOpt = Output.table
) -> None:
    """Your roles and permissions on PROJECT and its repos (or SUBJECT's, for its owners)."""
    access = client().check_project(project, subject)
    if output == Output.json:
        render.emit_json(access)
        return
    _access(access.subject, f"project {access.project}", access.roles, access.permissions)


@set_app.command("cluster")
def set_cluster(
    roles: Annotated[
        str,
        typer.Argument(
            help="clusterAdmin, projectCreator, or project or repo roles that then hold "
            "everywhere (comma-separated), or none"
        ),
    ],
    subject: Subject,
    output: OutputOpt = Output.table,
) -> None:
    """Make ROLES what SUBJECT holds on the cluster (cluster admins)."""
    _bindings(client().set_cluster_roles(roles, subject), output)


@get_app.command("cluster")
def get_cluster(output: OutputOpt = Output.table) -> None:
    """Who holds which roles on the cluster."""
    _bindings(client().get_cluster_roles(), output)
