"""What DynamoDB can store (DESIGN §2): the check and the repair, with literal expectations."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobstatus.storable import CUT_MARK, make_storable, number_problem, unstorable_reason
from tests.examples import examples

pytestmark = pytest.mark.unit


def nested(levels: int, leaf: Any = None) -> Any:
    """`levels` objects, one inside the other (`{"a": {"a": ... leaf}}`); built without recursion."""
    value: Any = {} if leaf is None else {"a": leaf}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "number",
    [0, 0.0, -0.0, 1, -1, 1e125, -1e125, 1e-130, -1e-130, 10**38 - 1, 10**39, 12345678901234567890.5, 1.5],
    ids=repr,
)
def test_storable_numbers(number: Any) -> None:
    assert number_problem(number) is None


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        (1e200, "1e+200 is out of range (magnitude 0 or 1e-130 .. 1e125)"),
        (-1e200, "-1e+200 is out of range (magnitude 0 or 1e-130 .. 1e125)"),
        (1.0000001e125, "1.0000001e+125 is out of range (magnitude 0 or 1e-130 .. 1e125)"),
        (1e-131, "1e-131 is out of range (magnitude 0 or 1e-130 .. 1e125)"),
        (10**41 + 1, "a number with 42 significant digits (at most 38)"),
        (10**38 + 1, "a number with 39 significant digits (at most 38)"),
        (-(10**38 + 1), "a number with 39 significant digits (at most 38)"),
        (
            Decimal("1.00000000000000000000000000000000000001"),
            "a number with 39 significant digits (at most 38)",
        ),
        (float("nan"), "nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        (float("-inf"), "-inf is not a finite number"),
    ],
    ids=repr,
)
def test_unstorable_numbers(number: Any, problem: str) -> None:
    assert number_problem(number) == problem


@settings(max_examples=examples(500), deadline=None)
@given(
    st.integers(min_value=-(10**45), max_value=10**45)
    | st.integers(min_value=1, max_value=10**7).map(lambda n: n * 10**38)
)
def test_an_integer_is_storable_exactly_when_it_has_at_most_38_significant_digits(number: int) -> None:
    # Significant digits counted from its decimal text: trailing zeros do not count
    significant = len(str(abs(number)).strip("0"))
    expected = None if significant <= 38 else f"a number with {significant} significant digits (at most 38)"
    assert number_problem(number) == expected
    assert unstorable_reason({"n": [number]}) == (None if expected is None else f"n[0]: {expected}")


def test_a_39_digit_integer_with_trailing_zeros_has_one_significant_digit() -> None:
    assert len(str(10**38)) == 39
    assert number_problem(10**38) is None


def test_unstorable_reason_names_the_path() -> None:
    assert unstorable_reason({"a": [1, {"b": 1e200}]}) == (
        "a[1].b: 1e+200 is out of range (magnitude 0 or 1e-130 .. 1e125)"
    )
    assert unstorable_reason({"a": {"": 1}}) == "a: an empty map key"
    assert unstorable_reason({"": 1}) == "value: an empty map key"
    assert unstorable_reason({"ok": "", "t": True, "n": None, "s": "é"}) is None


def test_depth_32_is_storable_and_33_is_not() -> None:
    # Levels count from the event (1): a field's object is level 2, so 31 objects fit in it.
    assert unstorable_reason(nested(31), level=2) is None
    assert unstorable_reason(nested(32), level=2) == ".".join(["a"] * 31) + ": nested deeper than 32 levels"
    assert unstorable_reason(nested(32), level=1) is None
    assert unstorable_reason(nested(33), level=1) is not None
    assert unstorable_reason([[[]]], level=30) is None
    assert unstorable_reason([[[]]], level=31) == "[0][0]: nested deeper than 32 levels"


def test_a_100000_deep_value_raises_no_recursion_error() -> None:
    deep = nested(100_000, leaf=1)
    assert unstorable_reason(deep) == ".".join(["a"] * 31) + ": nested deeper than 32 levels"
    repaired, changes = make_storable(deep)
    assert changes == [".".join(["a"] * 31) + ": nested deeper than 32 levels, cut"]
    assert repaired == nested(31, leaf=CUT_MARK)
    assert unstorable_reason(repaired) is None


def test_make_storable_repairs_and_says_what_it_changed() -> None:
    value = {
        "big": 1e200,
        "long": 10**41 + 1,
        "tiny": 1e-131,
        "nan": float("nan"),
        "": "dropped",
        "list": [1, {"": 2, "keep": 1e125}],
        "fine": {"x": 1.5, "s": "text", "b": False, "n": None},
    }
    repaired, changes = make_storable(value)
    assert repaired == {
        "big": "1e+200",
        "long": "100000000000000000000000000000000000000001",
        "tiny": "1e-131",
        "nan": "nan",
        "list": [1, {"keep": 1e125}],
        "fine": {"x": 1.5, "s": "text", "b": False, "n": None},
    }
    assert changes == [
        "big: number 1e+200 kept as a string",
        "list[1]: an empty map key dropped",
        "long: number 100000000000000000000000000000000000000001 kept as a string",
        "nan: number nan kept as a string",
        "tiny: number 1e-131 kept as a string",
        "value: an empty map key dropped",
    ]
    assert unstorable_reason(repaired) is None


def test_make_storable_leaves_a_storable_value_equal_and_unchanged() -> None:
    value = {"a": [1, 2.5, {"b": None}], "c": "d"}
    assert make_storable(value) == ({"a": [1, 2.5, {"b": None}], "c": "d"}, [])


def test_make_storable_cuts_at_the_level_it_is_given() -> None:
    # An input inside request is at level 3: 30 objects fit, the 31st is cut.
    repaired, changes = make_storable(nested(31, leaf=1), level=3)
    assert repaired == nested(30, leaf=CUT_MARK)
    assert changes == [".".join(["a"] * 30) + ": nested deeper than 32 levels, cut"]
    assert unstorable_reason(repaired, level=3) is None
