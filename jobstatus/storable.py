"""Values DynamoDB can store (DESIGN §2 "Storable values"): the check and the repair.

Pure. Levels count containers from the event itself (level 1); DynamoDB refuses deeper than 32.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

MAX_LEVELS: Final = 32
MAX_DIGITS: Final = 38
SMALLEST: Final = Decimal("1e-130")
LARGEST: Final = Decimal("1e125")
FIELD_LEVEL: Final = 2  # an event field's own object or array
CUT_MARK: Final = f"[cut: nested deeper than {MAX_LEVELS} levels]"
# An int of smaller magnitude has at most 38 digits and is 0 or at least 1: always storable.
MAX_EXACT_INT: Final = 10**MAX_DIGITS


def number_problem(value: int | float | Decimal) -> str | None:
    """Why DynamoDB cannot store this number, or None when it can."""
    if type(value) is int and -MAX_EXACT_INT < value < MAX_EXACT_INT:  # the common case first
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        return f"{value!r} is not a finite number"
    magnitude = number.copy_abs()  # abs() would round to the context's 28 digits
    if not magnitude.is_zero() and not SMALLEST <= magnitude <= LARGEST:
        return f"{value} is out of range (magnitude 0 or 1e-130 .. 1e125)"
    # Significant digits: leading and trailing zeros do not count (normalize() would round to
    # the decimal context's 28 digits, so strip them by hand).
    digits = len("".join(map(str, magnitude.as_tuple().digits)).strip("0"))
    if digits > MAX_DIGITS:
        return f"a number with {digits} significant digits (at most {MAX_DIGITS})"
    return None


def unstorable_reason(value: Any, level: int = FIELD_LEVEL) -> str | None:
    """Why `value`, placed at `level`, cannot be stored by DynamoDB; None when it can.

    Walks without recursion, so no depth of input can raise RecursionError.
    """
    stack: list[tuple[Any, int, str]] = [(value, level, "")]
    while stack:
        item, depth, path = stack.pop()
        kind = type(item)  # the exact types JSON gives first; their subclasses take the long way
        if kind is str or kind is bool or item is None:
            continue
        if kind is int and -MAX_EXACT_INT < item < MAX_EXACT_INT:
            continue
        if isinstance(item, bool | str):
            continue
        if isinstance(item, int | float | Decimal):
            if problem := number_problem(item):
                return f"{path or 'value'}: {problem}"
            continue
        if kind is dict or kind is list or isinstance(item, Mapping | list | tuple):
            if depth > MAX_LEVELS:
                return f"{path or 'value'}: nested deeper than {MAX_LEVELS} levels"
            if kind is dict or (kind is not list and isinstance(item, Mapping)):
                for key, child in item.items():
                    if key == "":
                        return f"{path or 'value'}: an empty map key"
                    stack.append((child, depth + 1, f"{path}.{key}" if path else str(key)))
            else:
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def make_storable(value: Any, level: int = FIELD_LEVEL) -> tuple[Any, list[str]]:
    """`value` changed so that DynamoDB can store it at `level`, and what was changed.

    Unstorable numbers become their string, empty map keys are dropped, and a container below
    the deepest allowed level is replaced by `CUT_MARK`. Iterative, like `unstorable_reason`.
    """
    changes: list[str] = []
    root: dict[str, Any] = {}
    # Each entry: the value to copy, its level, its path, and where to put the copy.
    stack: list[tuple[Any, int, str, Any, Any]] = [(value, level, "", root, "value")]
    while stack:
        item, depth, path, parent, slot = stack.pop()
        where = path or "value"
        if isinstance(item, int | float | Decimal) and not isinstance(item, bool):
            if number_problem(item):
                changes.append(f"{where}: number {item!r} kept as a string")
                item = str(item)
            parent[slot] = item
        elif isinstance(item, Mapping | list | tuple):
            if depth > MAX_LEVELS:
                changes.append(f"{where}: nested deeper than {MAX_LEVELS} levels, cut")
                parent[slot] = CUT_MARK
                continue
            if isinstance(item, Mapping):
                copy: dict[str, Any] = {}
                parent[slot] = copy
                for key, child in item.items():
                    if key == "":
                        changes.append(f"{where}: an empty map key dropped")
                        continue
                    copy[key] = None  # placed now, so the copy keeps the original key order
                    stack.append((child, depth + 1, f"{path}.{key}" if path else str(key), copy, key))
            else:
                items: list[Any] = [None] * len(item)
                parent[slot] = items
                stack.extend((child, depth + 1, f"{path}[{i}]", items, i) for i, child in enumerate(item))
        else:
            parent[slot] = item
    return root["value"], sorted(changes)
