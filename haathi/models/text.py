"""Text that enters haathi must be valid Unicode: it is stored and sent as UTF-8.

A Python ``str`` can hold what UTF-8 cannot encode: a lone surrogate (U+D800..U+DFFF), which
JSON's ``"\\ud800"`` escape decodes to and which ``os.listdir`` makes of a file name that is
not UTF-8. Such a string is refused where it comes in, naming the field it came in.
"""

from __future__ import annotations

from typing import Any

from haathi.errors import InvalidArgument


def not_unicode(exc: UnicodeEncodeError, what: str) -> InvalidArgument:
    """The error for ``what``, whose text UTF-8 could not encode (``exc``)."""
    bad = exc.object[exc.start : exc.start + 1] if isinstance(exc.object, str) else ""
    return InvalidArgument(
        f"{what} is not valid Unicode text: it holds the lone surrogate {ascii(bad)[1:-1]} (a "
        "file name that is not UTF-8, or a JSON \\ud800-\\udfff escape that is not one of a "
        "pair)"
    )


def check_text(value: str, what: str) -> str:
    """``value`` unchanged if UTF-8 can encode it; otherwise InvalidArgument naming ``what``."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise not_unicode(exc, what) from None
    return value


def check_texts(value: Any, what: str) -> Any:
    """Like :func:`check_text` for every string (keys too) inside a JSON-like document of
    dicts, lists and tuples; the error names where it is (``what.key[2]``)."""
    stack: list[tuple[Any, str]] = [(value, what)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str):
                    check_text(key, f"a key of {where}")
                stack.append((sub, f"{where}.{key}" if isinstance(key, str) else where))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return value
