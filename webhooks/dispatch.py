"""Which changes of the Jobs table become deliveries (pure): a stream record in, a Delivery or None out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.store import from_attribute_value
from webhooks.model import DEFAULT_EVENTS, Delivery
from webhooks.signing import delivery_body


def item_of(image: Mapping[str, Any]) -> dict[str, Any]:
    """A stream image (DynamoDB JSON) as the plain item the API reads."""
    return {name: from_attribute_value(value) for name, value in image.items()}


def subscribed_events(request: Mapping[str, Any]) -> tuple[str, ...]:
    """The statuses a job's request subscribed to (`webhookEvents`, default COMPLETED and FAILED)."""
    events = request.get("webhookEvents")
    if isinstance(events, list) and events:
        return tuple(str(event) for event in events)
    return DEFAULT_EVENTS


def delivery_of(record: Mapping[str, Any]) -> Delivery | None:
    """The delivery a stream record calls for, or None (no webhook, status not subscribed, a removal).

    Raises ValueError for a record that is not a Jobs item image.
    """
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not isinstance(image, Mapping):
        raise ValueError("stream record has no NewImage (the stream must be NEW_IMAGE)")
    item = item_of(image)
    request = item.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("webhook"), str):
        return None
    status, version = item.get("status"), item.get("version")
    if not isinstance(status, str) or status not in subscribed_events(request):
        return None
    job_id, user_id = item.get("jobId"), item.get("userId")
    if not all(isinstance(value, str) and value for value in (job_id, user_id, version)):
        raise ValueError("Jobs item without jobId, userId or version")
    return Delivery(
        job_id=str(job_id),
        user_id=str(user_id),
        url=request["webhook"],
        version=str(version),
        status=status,
        body=delivery_body(item),
    )
