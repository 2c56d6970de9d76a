"""Reading the objects of a spec document: keys in snake_case or lowerCamelCase (protojson
accepts both), a field haathi does not support or one given twice rejected by name, and typed
getters whose errors are one line naming the field's path as the user spelled it.
"""

from __future__ import annotations

import re
from typing import Any

from haathi.errors import InvalidArgument
from haathi.models.schedule import MAX_DURATION_S, format_duration, parse_duration


def _snake(key: str) -> str:
    """A key in snake_case: ``sqlDatabase`` is ``sql_database``; an all-capitals key is one
    word (Pachyderm's ``egress.URL`` is ``url``)."""
    if key.isupper():
        return key.lower()
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)


def type_name(value: Any) -> str:
    """How an error names the JSON type of ``value`` ("an object", "a list", ...)."""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


class SpecObject:
    """A spec object with keys normalized to snake_case; ``path`` names it in errors.

    A key outside ``allowed`` is refused by name; one in ``planned`` (a Pachyderm field haathi
    will support) is refused saying it is not supported yet.
    """

    def __init__(
        self,
        doc: Any,
        path: str,
        allowed: frozenset[str],
        planned: frozenset[str] = frozenset(),
    ) -> None:
        if not isinstance(doc, dict):
            raise InvalidArgument(
                f"{path or 'pipeline spec'} must be an object, got {type_name(doc)}"
            )
        self.path = path
        self.values: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        for key, value in doc.items():
            self._add(key, value, allowed, planned)

    def _add(self, key: Any, value: Any, allowed: frozenset[str], planned: frozenset[str]) -> None:
        if not isinstance(key, str):
            raise InvalidArgument(f"field names must be strings, got {key!r} in {self.where('')}")
        canon = _snake(key)
        if canon in planned:
            raise InvalidArgument(f"field {self.join(key)!r} in pipeline spec is not supported yet")
        if canon not in allowed:
            raise InvalidArgument(f"unsupported field {self.join(key)!r} in pipeline spec")
        if canon in self.names:
            raise InvalidArgument(
                f"field {self.join(canon)!r} given twice (as {self.names[canon]!r} and {key!r})"
            )
        self.names[canon] = key
        if value is not None:
            self.values[canon] = value

    def join(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def where(self, key: str) -> str:
        """The user's spelling of a field's full path."""
        return self.join(self.names.get(key, key)) if key else (self.path or "pipeline spec")

    def has(self, key: str) -> bool:
        return key in self.values

    def get_str(self, key: str, default: str | None = None) -> str | None:
        if key not in self.values:
            return default
        return as_str(self.values[key], self.where(key))

    def need_str(self, key: str, hint: str = "") -> str:
        value = self.get_str(key)
        if not value:
            raise InvalidArgument(f"{self.where(key)} is required{hint}")
        return value

    def get_bool(self, key: str) -> bool:
        value = self.values.get(key, False)
        if not isinstance(value, bool):
            raise InvalidArgument(
                f"{self.where(key)} must be true or false, got {type_name(value)}"
            )
        return value

    def get_int(self, key: str, default: int) -> int:
        return as_int(self.values[key], self.where(key)) if key in self.values else default

    def strs(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key, [])
        where = self.where(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{where} must be a list of strings")
        return tuple(value)

    def duration(self, key: str, bounded: bool = True) -> float | None:
        if key not in self.values:
            return None
        try:
            seconds = parse_duration(self.values[key])
        except InvalidArgument as exc:
            raise InvalidArgument(f"{self.where(key)}: {exc}") from exc
        if seconds <= 0:
            raise InvalidArgument(f"{self.where(key)} must be a positive duration")
        if bounded and seconds > MAX_DURATION_S:
            raise InvalidArgument(
                f"{self.where(key)} must be at most {format_duration(MAX_DURATION_S)} (a "
                f"year), got {format_duration(seconds)}"
            )
        return seconds


def as_str(value: Any, where: str) -> str:
    """``value``, which must be a string (the error names ``where``)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string, got {type_name(value)}")
    return value


def as_int(value: Any, where: str) -> int:
    """An integer; protojson also spells int64 as a decimal string."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where} must be an integer, got {type_name(value)}")
    return value
