"""The pure pieces of SubmitJobFn's strict reading and of making outside data fit for an event."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from producers.outside import fit_for_event, request_field
from producers.submit.strictjson import (
    NotStrictJson,
    decode_body,
    loads_strict,
    media_type_problem,
    nesting_depth,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[{{{{"}', 1),  # brackets inside a string do not count
        ('["\\"[[[", "\\\\", [[]]]', 3),  # nor after an escaped quote or a backslash
        ("[" * 5000 + "]" * 5000, 5000),
        ("]]]", 0),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_loads_strict_takes_64_levels_and_refuses_65() -> None:
    assert loads_strict("[" * 64 + "]" * 64) == eval("[" * 63 + "[]" + "]" * 63)
    with pytest.raises(NotStrictJson, match="deeper than 64 levels"):
        loads_strict("[" * 65 + "]" * 65)


@pytest.mark.parametrize(
    ("content_type", "problem"),
    [
        (None, None),
        ("", None),
        ("application/json", None),
        ('Application/Json ; Charset="UTF-8"', None),
        ("application/json; boundary=x", None),
        ("text/plain", "Content-Type must be application/json"),
        ("application/jsonx", "Content-Type must be application/json"),
        ("application/json; charset=utf-16", "the body must be UTF-8 (application/json; charset=utf-8)"),
    ],
)
def test_media_type(content_type: str | None, problem: str | None) -> None:
    assert media_type_problem(content_type) == problem


def test_decode_body() -> None:
    assert decode_body(None, True) == "" and decode_body("{}", False) == "{}"
    assert decode_body(base64.b64encode('{"p": "é"}'.encode()).decode(), True) == '{"p": "é"}'
    with pytest.raises(NotStrictJson, match=r"not UTF-8 \(byte 1\)"):
        decode_body(base64.b64encode(b"a\xe9").decode(), True)


@pytest.mark.parametrize(
    ("value", "fitted", "changes"),
    [
        ({"a": "ok"}, {"a": "ok"}, []),
        ({"a": "x\ud83d\ude00y"}, {"a": "x\U0001f600y"}, ["a: a lone surrogate replaced by U+FFFD"]),
        ({"a": ["\udc00"]}, {"a": ["\ufffd"]}, ["a[0]: a lone surrogate replaced by U+FFFD"]),
        ({"n": -1e-131, "m": 0.0}, {"n": "-1e-131", "m": 0.0}, ["n: number -1e-131 kept as a string"]),
    ],
)
def test_fit_for_event(value: Any, fitted: Any, changes: list[str]) -> None:
    assert fit_for_event(value, 2) == (fitted, changes)


def test_request_field_is_the_same_for_the_same_input_whichever_producer_builds_it() -> None:
    made = request_field("fal-ai/x", {"cfg": 1e200, "": 1})
    assert made.value == {"model": "fal-ai/x", "input": {"cfg": "1e+200"}}
    assert made.problem is None and made.input_bytes == len('{"cfg":"1e+200"}')
    assert request_field("fal-ai/x", "text").problem == "input is not a JSON object"
    assert request_field("", {}).problem == "model is not a string of 1 to 256 characters"


def test_two_keys_made_equal_by_the_repair_keep_one_and_say_so() -> None:
    value = dict([("\ud800", 1), ("\ud801", 1)])
    assert fit_for_event(value, 2) == (
        {"\ufffd": 1},
        [
            "\ufffd: a key made equal to another by the repair, dropped",
            "\ufffd: a lone surrogate in the key replaced by U+FFFD",
            "\ufffd: a lone surrogate in the key replaced by U+FFFD",
        ],
    )
