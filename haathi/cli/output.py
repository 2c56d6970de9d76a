"""What ``-o`` chooses: human tables (the default) or JSON for scripts."""

from __future__ import annotations

from enum import Enum


class Output(str, Enum):
    table = "table"
    json = "json"
