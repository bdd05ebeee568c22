"""projector.store's own attribute-value codec agrees with jobstatus.codec (boto3's TypeSerializer).

ProjectorFn does without boto3 on its cold start; whatever JSON an event carries, the store
must write exactly what jobstatus.codec would, refuse what it refuses, and read items back alike.
"""

from __future__ import annotations

import math
from decimal import DecimalException
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobstatus import codec
from projector import store
from tests.examples import examples

pytestmark = [pytest.mark.unit, pytest.mark.property]

REFUSED = (TypeError, ValueError, DecimalException)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


def _outcome(write: Any, value: Any) -> Any:
    try:
        return write(value)
    except REFUSED:
        return "refused"


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return math.isinf(value)
    if isinstance(value, dict):
        return any(_has_infinity(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_infinity(v) for v in value)
    return False


@settings(max_examples=examples(400))
@given(json_values)
def test_the_store_writes_what_jobstatus_codec_writes(value: Any) -> None:
    ours, theirs = _outcome(store.to_attribute_value, value), _outcome(codec.to_attribute_value, value)
    if _has_infinity(value):
        # boto3 lets -Infinity through as a number DynamoDB then refuses; ours refuses it at once
        assert ours == "refused"
    else:
        assert ours == theirs


@settings(max_examples=examples(300))
@given(st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=5))
def test_the_store_reads_items_as_jobstatus_codec_reads_them(values: dict[str, Any]) -> None:
    try:
        item = codec.to_item(values)
    except REFUSED:
        return
    if _has_infinity(values):
        return  # DynamoDB refuses -Infinity: no item holds it
    assert store.from_item(item) == codec.from_item(item)


def test_examples() -> None:
    assert store.to_attribute_value({"a": [1, 2.5, None, True, "x"]}) == {
        "M": {"a": {"L": [{"N": "1"}, {"N": "2.5"}, {"NULL": True}, {"BOOL": True}, {"S": "x"}]}}
    }
    assert store.from_item({"n": {"N": "3"}, "f": {"N": "0.5"}}) == {"n": 3, "f": 0.5}
    with pytest.raises(DecimalException):
        store.to_attribute_value(10**40 + 1)  # 41 significant digits
    with pytest.raises(TypeError):
        store.to_attribute_value(float("nan"))


@pytest.mark.parametrize(
    ("value", "written"),
    [(0, "0"), (-7, "-7"), (10**38 - 1, "9" * 38), (-(10**38) + 1, "-" + "9" * 38)],
)
def test_an_int_of_at_most_38_digits_is_written_as_jobstatus_codec_writes_it(
    value: int, written: str
) -> None:
    assert store.to_attribute_value(value) == codec.to_attribute_value(value) == {"N": written}


@pytest.mark.parametrize("value", [10**38, -(10**38), 10**38 + 1])
def test_an_int_of_39_digits_is_refused_as_jobstatus_codec_refuses_it(value: int) -> None:
    assert _outcome(store.to_attribute_value, value) == _outcome(codec.to_attribute_value, value) == "refused"
