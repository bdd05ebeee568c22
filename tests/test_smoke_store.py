import time
import uuid

from jobstatus.codec import from_item
from jobstatus.events import JobStatusChanged
from projector.fold import coalesce, project
from projector.store import JobStore, Outcome


def ev(status, occurred, attempt=1, **kw):
    return JobStatusChanged(
        event_id=str(uuid.uuid4()),
        job_id="job-1",
        user_id="u1",
        status=status,
        occurred_at=occurred,
        created_at="2026-11-22T07:00:00.000Z",
        attempt=attempt,
        **kw,
    )


def test_store_round_trip(ddb, jobs_table):
    store = JobStore(ddb, jobs_table, 30)
    a = ev("PROCESSING", "2026-11-22T07:00:01.000Z", progress=10, metrics={"x": 1.5})
    b = ev("COMPLETED", "2026-11-22T07:00:02.000Z", output_url="https://x/y.mp4")
    assert store.write(coalesce([("m1", b)])[0]).outcome is Outcome.APPLIED
    assert store.write(coalesce([("m2", a)])[0]).outcome is Outcome.STALE
    item = from_item(ddb.get_item(TableName=jobs_table, Key={"jobId": {"S": "job-1"}})["Item"])
    assert item == project([a, b], ttl_days=30, now=time.time())["job-1"]
