"""The command line as click sees it, each command made when it is first looked up.

typer makes a click command of every registered function before it parses a command line;
for haathi's ~80 commands that costs ~45 ms of CPU (evaluating each signature's
annotations), more than ``haathi version`` needs in all. :func:`click_app` gives the same
tree, but a group makes a command (or a subgroup) only when it is asked for it: ``haathi list
repo`` makes the groups ``haathi`` and ``list`` and the command ``repo``; ``--help`` makes
what it lists. A name not registered yet first calls ``load``, which registers the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import typer
from typer.core import TyperGroup
from typer.main import (
    get_command_from_info,
    get_command_name,
    get_group_from_info,
    solve_typer_info_defaults,
)
from typer.models import CommandInfo, TyperInfo


def click_app(app: typer.Typer, load: Callable[[], None]) -> TyperGroup:
    """``app`` as a click group whose commands are made when looked up. ``load`` registers
    the commands that are not registered yet (it may be called more than once)."""
    settings = {
        "pretty_exceptions_short": app.pretty_exceptions_short,
        "rich_markup_mode": app.rich_markup_mode,
        "suggest_commands": app.suggest_commands,
    }
    return _group(TyperInfo(app), settings, load)


def _group(info: TyperInfo, settings: dict[str, Any], load: Callable[[], None]) -> TyperGroup:
    """The group typer makes of ``info``, with commands made on demand."""
    source = info.typer_instance
    assert isinstance(source, typer.Typer)
    empty = copy.copy(source)  # the group itself: its options, callback and help
    empty.registered_commands, empty.registered_groups = [], []
    shell = copy.copy(info)
    shell.typer_instance = empty
    group = get_group_from_info(shell, **settings)
    group.commands = _Commands(source, settings, load)
    return group


class _Commands(MutableMapping[str, Any]):
    """A group's commands by name (as typer orders them: commands, then subgroups), each
    made from its registration the first time it is looked up."""

    def __init__(
        self, source: typer.Typer, settings: dict[str, Any], load: Callable[[], None]
    ) -> None:
        self._source = source
        self._settings = settings
        self._load = load
        self._loaded = False
        self._made: dict[str, Any] = {}
        self._scanned: tuple[tuple[int, int], dict[str, CommandInfo | TyperInfo]] | None = None

    def _registered(self, name: str | None = None) -> dict[str, CommandInfo | TyperInfo]:
        """What is registered; everything, once ``name`` (None: every name) is missing."""
        found = self._scan()
        if not self._loaded and (name is None or name not in found):
            self._load()
            self._loaded = True
            found = self._scan()
        return found

    def _scan(self) -> dict[str, CommandInfo | TyperInfo]:
        size = (len(self._source.registered_commands), len(self._source.registered_groups))
        if self._scanned is None or self._scanned[0] != size:
            self._scanned = size, self._names()
        return self._scanned[1]

    def _names(self) -> dict[str, CommandInfo | TyperInfo]:
        found: dict[str, CommandInfo | TyperInfo] = {}
        for command in self._source.registered_commands:
            assert command.callback is not None
            found[command.name or get_command_name(command.callback.__name__)] = command
        for group in self._source.registered_groups:
            name = solve_typer_info_defaults(group).name
            if not name:
                raise TypeError("every typer group of the CLI needs a name")
            found[name] = group
        return found

    def __getitem__(self, name: str) -> Any:
        if name not in self._made:
            info = self._registered(name)[name]  # KeyError: no such command
            if isinstance(info, TyperInfo):
                self._made[name] = _group(info, self._settings, self._load)
            else:
                self._made[name] = get_command_from_info(
                    info,
                    pretty_exceptions_short=self._settings["pretty_exceptions_short"],
                    rich_markup_mode=self._settings["rich_markup_mode"],
                )
        return self._made[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._made or name in self._registered(name))

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._registered()), **dict.fromkeys(self._made)})

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, name: str, command: Any) -> None:
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("the CLI's commands are registered with typer, not removed")
