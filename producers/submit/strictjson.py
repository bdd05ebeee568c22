"""Reading a client's body as strict JSON: what SubmitJobFn refuses before it looks at the fields.

Strict means what any JSON parser and DynamoDB's UTF-8 both accept: no `NaN`/`Infinity`, no
number beyond a double's range (`1e400`), no lone surrogate (`"\\ud800"`), and nesting no deeper
than `MAX_DEPTH` (Python's parser would raise RecursionError near 1,000). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from itertools import accumulate
from typing import Any, Final

from producers.outside import has_lone_surrogate

MAX_DEPTH: Final = 64  # levels of objects and arrays in a body; far more than any Fal arguments need
JSON_MEDIA_TYPE: Final = "application/json"
UTF8_NAMES: Final = frozenset({"utf-8", "utf8"})

# A JSON string literal (unrolled: no backtracking per character), and anything but a bracket.
_STRING_RE: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE: Final = re.compile(r"[^\[\]{}]+")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}


class NotStrictJson(ValueError):
    """The text is not strict JSON; the message says why, in words a client can act on."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # where in the body, as the 400's `fields` name it


def media_type_problem(content_type: str | None) -> str | None:
    """Why a body of this Content-Type is not read as JSON, or None.

    `application/json` in any case, with no charset or charset utf-8; a missing or blank header
    is taken as JSON (what curl and many SDKs send without being told).
    """
    if content_type is None or not content_type.strip():
        return None
    media, _, parameters = content_type.partition(";")
    if media.strip().lower() != JSON_MEDIA_TYPE:
        return f"Content-Type must be {JSON_MEDIA_TYPE}"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in UTF8_NAMES:
            return f"the body must be UTF-8 ({JSON_MEDIA_TYPE}; charset=utf-8)"
    return None


def decode_body(body: str | None, is_base64: bool) -> str:
    """The body as text; a base64 body is decoded and must be UTF-8 (`NotStrictJson` if not)."""
    if body is None or not is_base64:
        return body or ""
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as error:
        raise NotStrictJson("the body is not valid base64") from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotStrictJson(f"the body is not UTF-8 (byte {error.start})") from error


def nesting_depth(text: str) -> int:
    """How deep objects and arrays nest in JSON `text` (brackets inside strings do not count).

    Linear and without recursion, so it can be asked of any text before parsing it.
    """
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    return max(0, max(accumulate(_STEP[c] for c in brackets), default=0))


def _no_constant(name: str) -> Any:
    raise NotStrictJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotStrictJson(f"the number {text[:40]} is beyond the range of a double")
    return value


def loads_strict(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `text` as strict JSON; `NotStrictJson` (a ValueError) saying why it is not."""
    if nesting_depth(text) > max_depth:
        raise NotStrictJson(f"the body nests objects and arrays deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except NotStrictJson:
        raise
    except ValueError as error:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise NotStrictJson(f"the body is not JSON: {error}") from error
    where = lone_surrogate_at(value)
    if where is not None:
        raise NotStrictJson("a lone surrogate is not Unicode text", field=where)
    return value


def lone_surrogate_at(value: Any) -> str | None:
    """The path of the first string or key holding a lone surrogate ("body" for the top), or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if has_lone_surrogate(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else key
                if has_lone_surrogate(key):
                    return where.encode("utf-8", "backslashreplace").decode()
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None
