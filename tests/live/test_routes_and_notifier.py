"""StreamFn and NotifierFn together on moto: subscribe, current state, every change, who sees what."""

from __future__ import annotations

import pytest

from tests.live.support import ALICE, BOB, ROOT, Browser, job_event

pytestmark = pytest.mark.unit

DONE_AT = "2026-11-22T07:05:00.000Z"


def test_a_subscriber_gets_the_current_state_then_every_change(live):
    # Given Alice's job, QUEUED, and Alice connected
    queued = job_event("job-1")
    live.project(queued)
    assert live.connect("c-alice", ALICE) == {"statusCode": 200}

    # When she subscribes
    frames = live.send("c-alice", {"action": "subscribe", "jobIds": ["job-1"]})

    # Then the current state comes first, then `subscribed`
    assert frames == [
        {
            "type": "job",
            "job": {
                "jobId": "job-1",
                "status": "QUEUED",
                "createdAt": "2026-11-22T07:00:00.000Z",
                "updatedAt": "2026-11-22T07:00:00.000Z",
                "outputUrl": None,
                "attempt": 1,
            },
            "version": f"0001#1#2026-11-22T07:00:00.000Z#{queued.event_id}",
        },
        {"type": "subscribed", "jobIds": ["job-1"], "mine": False},
    ]

    # And every change after it, through the stream
    live.new_records()  # the QUEUED write is already known
    done = job_event("job-1", "COMPLETED", DONE_AT, output_url="https://cdn.example.com/1.mp4")
    live.project(job_event("job-1", "PROCESSING", "2026-11-22T07:01:00.000Z", progress=40), done)
    assert live.pump() == {"batchItemFailures": []}
    (message,) = live.api.take("c-alice")  # the batch was coalesced: one write, one change
    assert message["version"] == f"0001#3#{DONE_AT}#{done.event_id}"
    assert message["job"]["status"] == "COMPLETED"
    assert message["job"]["completedAt"] == DONE_AT
    assert message["job"]["outputUrl"] == "https://cdn.example.com/1.mp4"


def test_another_users_socket_learns_nothing_of_a_job_not_theirs(live):
    live.project(job_event("job-a", user_id=ALICE))
    live.connect("c-bob", BOB)

    # Bob subscribes to Alice's job by id and to all of his own
    assert live.send("c-bob", {"action": "subscribe", "jobIds": ["job-a"], "mine": True}) == [
        {"type": "subscribed", "jobIds": ["job-a"], "mine": True}
    ]
    live.project(job_event("job-a", "PROCESSING", "2026-11-22T07:01:00.000Z", user_id=ALICE))
    assert live.pump() == {"batchItemFailures": []}
    assert live.api.take("c-bob") == []


def test_an_admin_may_follow_any_job(live):
    live.project(job_event("job-a", user_id=ALICE))
    live.connect("c-root", ROOT, admin=True)
    frames = live.send("c-root", {"action": "subscribe", "jobIds": ["job-a"]})
    assert [f["type"] for f in frames] == ["job", "subscribed"]
    assert frames[0]["job"]["jobId"] == "job-a"
    live.new_records()
    live.project(job_event("job-a", "PROCESSING", "2026-11-22T07:01:00.000Z", user_id=ALICE))
    live.pump()
    assert [m["job"]["status"] for m in live.api.take("c-root")] == ["PROCESSING"]


def test_mine_sends_the_callers_jobs_and_every_new_one(live):
    live.project(job_event("job-1"), job_event("job-2"), job_event("job-b", user_id=BOB))
    live.connect("c-alice", ALICE)
    frames = live.send("c-alice", {"action": "subscribe", "mine": True})
    assert sorted(f["job"]["jobId"] for f in frames if f["type"] == "job") == ["job-1", "job-2"]
    assert frames[-1] == {"type": "subscribed", "jobIds": [], "mine": True}

    # A job submitted after the subscribe arrives too; Bob's never does.
    live.new_records()
    live.project(job_event("job-3"), job_event("job-b2", user_id=BOB))
    live.pump()
    assert [m["job"]["jobId"] for m in live.api.take("c-alice")] == ["job-3"]


def test_a_job_subscribed_before_it_exists_arrives_when_projected(live):
    # The 202 came back; the projector has not written the job yet.
    live.connect("c-alice", ALICE)
    assert live.send("c-alice", {"action": "subscribe", "jobIds": ["job-new"]}) == [
        {"type": "subscribed", "jobIds": ["job-new"], "mine": False}
    ]
    live.project(job_event("job-new"))
    live.pump()
    assert [(m["job"]["jobId"], m["job"]["status"]) for m in live.api.take("c-alice")] == [
        ("job-new", "QUEUED")
    ]


def test_a_connection_subscribed_by_id_and_by_mine_gets_each_change_once(live):
    live.connect("c-alice", ALICE)
    live.send("c-alice", {"action": "subscribe", "jobIds": ["job-1"], "mine": True})
    live.project(job_event("job-1"))
    live.pump()
    assert len(live.api.take("c-alice")) == 1


def test_unsubscribe_stops_the_changes_and_answers_what_is_left(live):
    live.connect("c-alice", ALICE)
    live.send("c-alice", {"action": "subscribe", "jobIds": ["job-1", "job-2"]})
    assert live.send("c-alice", {"action": "unsubscribe", "jobIds": ["job-1"]}) == [
        {"type": "subscribed", "jobIds": ["job-2"], "mine": False}
    ]
    live.project(job_event("job-1"), job_event("job-2"))
    live.pump()
    assert [m["job"]["jobId"] for m in live.api.take("c-alice")] == ["job-2"]


def test_bad_messages_get_an_error_and_the_other_subscriptions_keep_working(live):
    live.connect("c-alice", ALICE)
    live.send("c-alice", {"action": "subscribe", "jobIds": ["job-1"]})
    bad = [
        ("{not json", "INVALID_JSON"),
        ('{"action": "dance"}', "UNKNOWN_ACTION"),
        ('{"action": "subscribe", "jobIds": ["bad id!"]}', "INVALID_JOB_ID"),
        (
            '{"action": "subscribe", "jobIds": [' + ",".join(f'"j{i}"' for i in range(51)) + "]}",
            "TOO_MANY_JOB_IDS",
        ),
        ('{"action": "subscribe", "jobIds": "job-2"}', "INVALID_MESSAGE"),
    ]
    for frame, code in bad:
        (answer,) = live.send("c-alice", frame, route_key="$default")
        assert answer["type"] == "error" and answer["error"]["code"] == code, frame
    live.project(job_event("job-1"))
    live.pump()
    assert [m["job"]["jobId"] for m in live.api.take("c-alice")] == ["job-1"]


def test_a_flood_of_subscribes_is_bounded_per_connection(live):
    live.connect("c-alice", ALICE)
    for batch in range(4):  # 4 x 50 = 200, the limit
        ids = [f"job-{batch}-{i}" for i in range(50)]
        assert live.send("c-alice", {"action": "subscribe", "jobIds": ids})[-1]["type"] == "subscribed"
    (answer,) = live.send("c-alice", {"action": "subscribe", "jobIds": ["one-more"]})
    assert answer["type"] == "error" and answer["error"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    # Nothing was added, nothing was lost; subscribing again to a held job is no new subscription.
    assert len(live.connections.connection("c-alice").topics) == 200
    assert live.send("c-alice", {"action": "subscribe", "jobIds": ["job-0-0"]})[-1]["type"] == "subscribed"


def test_ping_answers_pong(live):
    live.connect("c-alice", ALICE)
    assert live.send("c-alice", {"action": "ping"}) == [{"type": "pong"}]


def test_connect_without_the_authorizer_context_is_refused(live):
    from notifier.routes import handle
    from tests.live.support import ws_event

    assert handle(ws_event("$connect", "c-x"), live.stream_deps) == {"statusCode": 401}
    assert live.connections.connection("c-x") is None


def test_a_message_on_an_unknown_connection_asks_to_reconnect(live):
    (answer,) = live.send("c-ghost", {"action": "subscribe", "jobIds": ["job-1"]})
    assert answer["type"] == "error" and answer["error"]["code"] == "CONNECTION_EXPIRED"


def test_disconnect_forgets_the_connection_and_its_subscriptions(live):
    live.connect("c-alice", ALICE)
    live.send("c-alice", {"action": "subscribe", "jobIds": ["job-1"], "mine": True})
    live.disconnect("c-alice")
    assert live.connections.connection("c-alice") is None
    assert live.connections.subscribers("job#job-1") == []
    assert live.connections.subscribers(f"user#{ALICE}") == []


def test_a_gone_connection_is_forgotten_by_the_notifier(live):
    live.connect("c-alice", ALICE)
    live.connect("c-alice-2", ALICE)
    for connection in ("c-alice", "c-alice-2"):
        live.send(connection, {"action": "subscribe", "jobIds": ["job-1"]})
    live.api.gone.add("c-alice")  # the browser left without a $disconnect
    live.project(job_event("job-1"))
    assert live.pump() == {"batchItemFailures": []}
    assert live.connections.connection("c-alice") is None
    assert [s.connection_id for s in live.connections.subscribers("job#job-1")] == ["c-alice-2"]
    assert len(live.api.take("c-alice-2")) == 1


def test_a_connection_gone_while_answering_a_subscribe_is_forgotten(live):
    live.connect("c-alice", ALICE)
    live.api.gone.add("c-alice")
    live.send("c-alice", {"action": "ping"})
    assert live.connections.connection("c-alice") is None


def test_a_record_whose_post_fails_is_reported_by_its_sequence_number(live):
    live.connect("c-ok", ALICE)
    live.connect("c-broken", BOB)
    live.send("c-ok", {"action": "subscribe", "jobIds": ["job-a"]})
    live.send("c-broken", {"action": "subscribe", "jobIds": ["job-b"]})
    live.api.broken.add("c-broken")
    live.project(job_event("job-b", user_id=BOB))
    live.project(job_event("job-a", user_id=ALICE))
    records = live.new_records()
    from notifier.handler import handle

    answer = handle({"Records": records}, live.notifier_deps)
    # moto writes a key-only INSERT before the item's (skipped): the failed one is job-b's with a version.
    (failed,) = [
        r["dynamodb"]["SequenceNumber"]
        for r in records
        if r["dynamodb"]["NewImage"]["jobId"] == {"S": "job-b"} and "version" in r["dynamodb"]["NewImage"]
    ]
    assert answer == {"batchItemFailures": [{"itemIdentifier": failed}]}
    assert [m["job"]["jobId"] for m in live.api.take("c-ok")] == ["job-a"]


def test_a_connection_dropped_mid_job_and_reopened_shows_the_final_state(live):
    live.connect("c-1", ALICE)
    browser = Browser()
    browser.receive(live.send("c-1", {"action": "subscribe", "jobIds": ["job-1"]}))
    live.project(job_event("job-1"))
    live.pump()
    browser.receive(live.api.take("c-1"))
    live.api.gone.add("c-1")  # the network drops; changes go on
    live.project(job_event("job-1", "PROCESSING", "2026-11-22T07:01:00.000Z"))
    live.project(job_event("job-1", "COMPLETED", DONE_AT, output_url="https://cdn.example.com/1.mp4"))
    live.pump()
    assert browser.jobs["job-1"]["job"]["status"] == "QUEUED"

    live.connect("c-2", ALICE)
    browser.receive(live.send("c-2", {"action": "subscribe", "jobIds": ["job-1"]}))
    assert browser.jobs["job-1"]["job"]["status"] == "COMPLETED"
    assert browser.jobs["job-1"]["version"] == live.job("job-1")["version"]


def test_records_that_are_no_job_change_are_skipped(live):
    from notifier.handler import handle

    remove = {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "1", "Keys": {"jobId": {"S": "x"}}}}
    no_version = {
        "eventName": "MODIFY",
        "dynamodb": {"SequenceNumber": "2", "NewImage": {"jobId": {"S": "x"}, "userId": {"S": ALICE}}},
    }
    odd = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "3", "NewImage": {"jobId": {"Q": "x"}}}}
    assert handle({"Records": [remove, no_version, odd, "junk"]}, live.notifier_deps) == {
        "batchItemFailures": []
    }
    assert handle({"not": "a batch"}, live.notifier_deps) == {"batchItemFailures": []}
    assert live.api.posts == 0
