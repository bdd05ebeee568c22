"""Contract tests of `VideoGenerationRequested` (DESIGN §2), the helpers beside it, and both its ends."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from jobstatus.commalist import comma_list, split_comma_list
from jobstatus.errors import client_error_code, client_error_message, validation_errors, validation_summary
from jobstatus.requests import VideoGenerationRequested
from producers.invoker.request import BadRecord, parse_request

pytestmark = pytest.mark.unit

MODEL = "fal-ai/kling-video/v2/master/text-to-video"
FULL = {
    "jobId": "job-1",
    "userId": "user-1",
    "createdAt": "2026-11-22T07:20:31.123Z",
    "model": MODEL,
    "input": {"prompt": "a cat", "n": [1, 2.5, None, True], "nested": {"k": "v"}},
}


def envelope(detail: Any, event_id: str = "evt-1") -> dict[str, Any]:
    return {"id": event_id, "detail-type": "VideoGenerationRequested", "detail": detail}


def test_the_full_detail_round_trips_in_contract_order() -> None:
    request = VideoGenerationRequested.model_validate(FULL)
    text = request.detail_json()
    assert text == (
        '{"jobId":"job-1","userId":"user-1","createdAt":"2026-11-22T07:20:31.123Z",'
        '"model":"fal-ai/kling-video/v2/master/text-to-video",'
        '"input":{"prompt":"a cat","n":[1,2.5,null,true],"nested":{"k":"v"}}}'
    )
    assert json.loads(text) == FULL


def test_job_id_and_created_at_are_optional_and_left_out_when_absent() -> None:
    request = VideoGenerationRequested.model_validate({"userId": "u", "model": MODEL, "input": {}})
    assert request.job_id is None and request.created_at is None
    assert (
        request.detail_json()
        == '{"userId":"u","model":"fal-ai/kling-video/v2/master/text-to-video","input":{}}'
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"userId": ""}, "userId"),
        ({"userId": "u" * 257}, "userId"),
        ({"jobId": "bad id!"}, "jobId"),
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"model": 7}, "model"),
        ({"input": "not an object"}, "input"),
        ({"input": [1]}, "input"),
    ],
)
def test_a_detail_outside_the_contract_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        VideoGenerationRequested.model_validate({**FULL, **change})
    assert field in [name.split(".")[0] for name, _ in validation_errors(raised.value)]


def test_missing_user_id_model_or_input_is_refused() -> None:
    for name in ("userId", "model", "input"):
        detail = {key: value for key, value in FULL.items() if key != name}
        with pytest.raises(ValidationError):
            VideoGenerationRequested.model_validate(detail)


def test_the_invoker_parses_what_submit_builds() -> None:
    built = VideoGenerationRequested(
        job_id="job-9", user_id="user-9", created_at="2026-11-22T07:20:31.123Z", model=MODEL, input={"p": "x"}
    )
    job = parse_request(envelope(json.loads(built.detail_json())))
    assert (job.ref.job_id, job.ref.user_id, job.ref.created_at) == (
        "job-9",
        "user-9",
        "2026-11-22T07:20:31.123Z",
    )
    assert (job.model, job.arguments, job.problem) == (MODEL, {"p": "x"}, None)


def test_a_refused_model_or_input_still_names_its_job_which_then_fails() -> None:
    job = parse_request(envelope({**FULL, "input": "not an object", "surprise": 1}))
    assert job.ref.job_id == "job-1"
    assert job.problem is not None and "input" in job.problem and "surprise" in job.problem


@pytest.mark.parametrize(
    "detail",
    [
        {"model": MODEL, "input": {}},
        {**FULL, "jobId": "bad id!"},
        {**FULL, "userId": ""},
        {**FULL, "createdAt": 5},
        "not an object",
    ],
)
def test_a_detail_that_names_no_job_is_a_bad_record(detail: Any) -> None:
    with pytest.raises(BadRecord):
        parse_request(envelope(detail))


def test_client_error_code_and_message() -> None:
    error = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutEvents")
    assert client_error_code(error) == "ThrottlingException"
    assert client_error_message(error) == "slow down"
    assert client_error_code(ClientError({}, "PutEvents")) == ""
    assert client_error_code(ValueError("no response")) == ""
    assert client_error_message(ValueError("plain")) == "plain"


class _Two(BaseModel):
    a: int
    b: dict[str, int]


def test_validation_summary_names_each_field() -> None:
    with pytest.raises(ValidationError) as raised:
        _Two.model_validate({"a": "x", "b": {"c": "y"}})
    assert validation_errors(raised.value) == [
        ("a", "Input should be a valid integer, unable to parse string as an integer"),
        ("b.c", "Input should be a valid integer, unable to parse string as an integer"),
    ]
    assert validation_summary(raised.value, fields=False) == (
        "Input should be a valid integer, unable to parse string as an integer; "
        "Input should be a valid integer, unable to parse string as an integer"
    )
    with pytest.raises(ValidationError) as whole:
        _Two.model_validate(3)
    assert validation_summary(whole.value, root="body").startswith("body: ")


def test_comma_lists_drop_blanks_and_keep_order() -> None:
    assert split_comma_list(" b, a,,  ,c ") == ("b", "a", "c")
    assert split_comma_list("") == ()
    assert comma_list("x,y") == ("x", "y")
    assert comma_list(("kept",)) == ("kept",)


def test_the_webhook_fields_are_optional_and_follow_input_in_contract_order() -> None:
    detail = {**FULL, "webhook": "https://hooks.example.com/h", "webhookEvents": ["PROCESSING", "FAILED"]}
    request = VideoGenerationRequested.model_validate(detail)
    assert request.webhook == "https://hooks.example.com/h"
    assert request.webhook_events == ["PROCESSING", "FAILED"]
    assert request.detail_json().endswith(
        '"input":{"prompt":"a cat","n":[1,2.5,null,true],"nested":{"k":"v"}},'
        '"webhook":"https://hooks.example.com/h","webhookEvents":["PROCESSING","FAILED"]}'
    )
    assert "webhook" not in VideoGenerationRequested.model_validate(FULL).detail_json()


@pytest.mark.parametrize(
    "change",
    [
        {"webhook": "ftp://hooks.example.com/"},
        {"webhook": "https://" + "h" * 2048},
        {"webhook": 7},
        {"webhookEvents": []},
        {"webhookEvents": ["DONE"]},
        {"webhookEvents": "FAILED"},
    ],
)
def test_webhook_fields_outside_the_contract_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        VideoGenerationRequested.model_validate({**FULL, "webhook": "https://hooks.example.com/h", **change})
    assert [name.split(".")[0] for name, _ in validation_errors(raised.value)] == [next(iter(change))]
