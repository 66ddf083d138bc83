"""Session tags: free ``key=value`` labels (``condition=A``, ``site=Leeds``) a study groups by.

One parser for every place a user types them: the CLIs' ``--tag``, the batch manifest's
``tags`` column (``;``-separated) and the pages' text fields.
"""
from __future__ import annotations

from typing import Iterable, Mapping

MAX_KEY, MAX_VALUE = 60, 200


class TagError(ValueError):
    """A tag the user typed is not ``key=value`` (the message quotes it)."""


def parse_tag(text: str) -> tuple[str, str]:
    """``"condition = A"`` -> ``("condition", "A")``; :class:`TagError` names what was given."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise TagError(f"tag {text!r} is not key=value (for example condition=A)")
    if len(key) > MAX_KEY or len(value) > MAX_VALUE:
        raise TagError(f"tag {text!r} is too long (key at most {MAX_KEY}, value at most {MAX_VALUE} characters)")
    return key, value


def parse_tags(items: Iterable[str] | str | None) -> dict[str, str]:
    """Tags from a list of ``key=value`` items or one ``;``/newline-separated string; later keys win."""
    if items is None:
        return {}
    if isinstance(items, str):
        items = items.replace("\n", ";").split(";")
    return dict(parse_tag(item) for item in items if item.strip())


def format_tags(tags: Mapping[str, str] | None) -> str:
    """The inverse of :func:`parse_tags` for one line: ``condition=A; site=Leeds``."""
    return "; ".join(f"{k}={v}" for k, v in (tags or {}).items())
