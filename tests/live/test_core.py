"""The pure protocol rules: parsing with clear errors, the subscription bound, who receives what."""

from __future__ import annotations

import json

import jsonschema
import pytest

from jobstatus.http import Caller
from notifier.core import (
    Ping,
    ProtocolError,
    Subscriber,
    Subscription,
    check_room,
    encode,
    error_message,
    job_message,
    parse_client_message,
    recipients,
    subscribed_message,
)
from tests.live.asyncapi import check_client_message, check_server_message

pytestmark = pytest.mark.unit

ALICE = Caller("alice")
ITEM = {
    "jobId": "job-1",
    "userId": "alice",
    "status": "FAILED",
    "createdAt": "2026-11-22T07:00:00.000Z",
    "updatedAt": "2026-11-22T07:03:00.000Z",
    "version": "0001#3#2026-11-22T07:03:00.000Z#e1",
    "lastEventId": "e1",
    "attempt": 1,
    "error": {"code": "FAL_ERROR", "message": "boom", "retryable": False},
    "ttl": 2_000_000_000,
}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"action": "ping"}', Ping()),
        ('{"action": "subscribe", "jobIds": ["a", "b", "a"]}', Subscription(True, ("a", "b"))),
        ('{"action": "subscribe", "mine": true}', Subscription(True, (), mine=True)),
        ('{"action": "unsubscribe", "jobIds": ["a"], "mine": true}', Subscription(False, ("a",), mine=True)),
        (b'{"action": "unsubscribe", "mine": true}', Subscription(False, (), mine=True)),
    ],
)
def test_valid_messages_parse(frame, expected):
    assert parse_client_message(frame) == expected
    check_client_message(json.loads(frame))


TOO_LONG_ID = "j" * 129


@pytest.mark.parametrize(
    ("frame", "code", "says"),
    [
        ("{nope", "INVALID_JSON", "not JSON"),
        (b"\xff\xfe", "INVALID_JSON", "not UTF-8"),
        (None, "INVALID_MESSAGE", "empty"),
        ("[1, 2]", "INVALID_MESSAGE", "JSON object"),
        ('{"jobIds": ["a"]}', "INVALID_MESSAGE", "action must be a string"),
        ('{"action": 7}', "INVALID_MESSAGE", "action must be a string"),
        ('{"action": "dance"}', "UNKNOWN_ACTION", "unknown action 'dance'"),
        ('{"action": "ping", "x": 1}', "INVALID_MESSAGE", "ping takes no other field"),
        ('{"action": "subscribe"}', "INVALID_MESSAGE", "needs jobIds"),
        ('{"action": "subscribe", "mine": false}', "INVALID_MESSAGE", "needs jobIds"),
        ('{"action": "subscribe", "jobIds": []}', "INVALID_MESSAGE", "needs jobIds"),
        ('{"action": "subscribe", "jobIds": "a"}', "INVALID_MESSAGE", "jobIds must be an array"),
        ('{"action": "subscribe", "jobIds": ["a", 5]}', "INVALID_MESSAGE", "jobIds[1] must be a string"),
        ('{"action": "subscribe", "mine": "yes"}', "INVALID_MESSAGE", "mine must be true or false"),
        ('{"action": "subscribe", "jobIds": ["a"], "all": 1}', "INVALID_MESSAGE", "unknown: all"),
        ('{"action": "subscribe", "jobIds": ["a b"]}', "INVALID_JOB_ID", "jobIds[0] must match"),
        ('{"action": "subscribe", "jobIds": ["-a"]}', "INVALID_JOB_ID", "jobIds[0] must match"),
        (f'{{"action": "subscribe", "jobIds": ["{TOO_LONG_ID}"]}}', "INVALID_JOB_ID", "must match"),
        (
            json.dumps({"action": "subscribe", "jobIds": [f"j{i}" for i in range(51)]}),
            "TOO_MANY_JOB_IDS",
            "at most 50",
        ),
        ('{"action": "subscribe", "jobIds": ["' + "a" * 40_000 + '"]}', "INVALID_MESSAGE", "longer than"),
    ],
)
def test_bad_messages_are_refused_with_a_clear_code_and_message(frame, code, says):
    with pytest.raises(ProtocolError) as refused:
        parse_client_message(frame)
    assert refused.value.code == code
    assert says in refused.value.message
    check_server_message(error_message(refused.value.code, refused.value.message))


def test_fifty_ids_are_accepted():
    ids = [f"j{i}" for i in range(50)]
    assert parse_client_message(json.dumps({"action": "subscribe", "jobIds": ids})) == Subscription(
        True, tuple(ids)
    )


def test_the_document_refuses_what_the_parser_refuses():
    for message in (
        {"action": "subscribe"},
        {"action": "subscribe", "jobIds": [f"j{i}" for i in range(51)]},
        {"action": "subscribe", "jobIds": ["bad id"]},
        {"action": "dance"},
        {"action": "ping", "x": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check_client_message(message)
    with pytest.raises(jsonschema.ValidationError):
        check_server_message({"type": "job", "job": {"jobId": "j"}, "version": "v"})


def test_the_subscription_bound_counts_only_new_topics():
    held = [f"job#{i}" for i in range(199)]
    assert check_room(held, ["job#0", "job#new", "job#new"]) == ["job#new"]
    with pytest.raises(ProtocolError) as refused:
        check_room(held, ["job#a", "job#b"])
    assert refused.value.code == "TOO_MANY_SUBSCRIPTIONS"
    assert refused.value.message.startswith("a connection holds at most 200 subscriptions; it holds 199")


def test_job_message_carries_the_get_body_and_the_version():
    assert job_message(ITEM) == {
        "type": "job",
        "job": {
            "jobId": "job-1",
            "status": "FAILED",
            "createdAt": "2026-11-22T07:00:00.000Z",
            "updatedAt": "2026-11-22T07:03:00.000Z",
            "outputUrl": None,
            "error": {"code": "FAL_ERROR", "message": "boom", "retryable": False},
            "attempt": 1,
            "completedAt": "2026-11-22T07:03:00.000Z",
        },
        "version": "0001#3#2026-11-22T07:03:00.000Z#e1",
    }
    check_server_message(job_message(ITEM))
    assert json.loads(encode(job_message(ITEM))) == job_message(ITEM)


def test_subscribed_lists_every_job_followed_and_whether_mine():
    assert subscribed_message({"job#b", "job#a", "user#alice"}, ALICE) == {
        "type": "subscribed",
        "jobIds": ["a", "b"],
        "mine": True,
    }
    assert subscribed_message({"user#bob"}, ALICE)["mine"] is False


def test_only_the_owner_and_admins_receive_each_once():
    subscribers = [
        Subscriber("c-alice", Caller("alice")),
        Subscriber("c-alice", Caller("alice")),
        Subscriber("c-bob", Caller("bob")),
        Subscriber("c-root", Caller("root", is_admin=True)),
    ]
    assert recipients(ITEM, subscribers, now=1_800_000_000) == ["c-alice", "c-root"]
    # An expired item is nobody's any more.
    assert recipients(ITEM, subscribers, now=2_000_000_001) == []


def test_the_core_is_pure_and_no_notifier_module_imports_the_local_stack():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, notifier.core; print(' '.join(sorted(sys.modules)))"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = {"boto3", "botocore", "aws_lambda_powertools", "pydantic"}
    assert heavy.isdisjoint(loaded), heavy & set(loaded)
    for module in (root / "notifier").glob("*.py"):
        text = module.read_text()
        assert "import local" not in text and "from local" not in text, module.name
