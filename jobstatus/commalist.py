"""Comma-separated list settings (`ALLOWED_ORIGINS`, `MODEL_ALLOW_LIST`): blanks dropped, order kept."""

from __future__ import annotations


def split_comma_list(value: str) -> tuple[str, ...]:
    """`"a, b,,"` as `("a", "b")`."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def comma_list(value: object) -> object:
    """A pydantic `mode="before"` validator body: a string is split, anything else passes on."""
    return split_comma_list(value) if isinstance(value, str) else value
