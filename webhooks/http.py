"""One HTTP POST of a delivery to a checked address (DESIGN §4c): no redirects, 10 s, 64 KiB read.

The connection goes to the address `check_webhook_url` approved, never to the name: TLS still
sends the name (SNI) and checks the certificate against it, and the Host header carries it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import urllib3
from urllib3.exceptions import HTTPError

from webhooks.ssrf import CheckedUrl

TIMEOUT_SECONDS: Final = 10.0
MAX_READ_BYTES: Final = 64 * 1024
USER_AGENT: Final = "jobstatus-webhooks/1"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What an attempt got: the status code, or None and why the attempt failed."""

    status: int | None
    error: str | None = None
    bytes_read: int = 0
    elapsed_ms: float = 0.0


def post(
    checked: CheckedUrl,
    headers: dict[str, str],
    body: bytes,
    *,
    timeout: float = TIMEOUT_SECONDS,
    max_read: int = MAX_READ_BYTES,
    ca_certs: str | None = None,
) -> HttpAnswer:
    """POST `body` to `checked`'s first address; never raises for what the receiver does.

    The whole attempt (connect, send, headers, at most `max_read` bytes of the answer) must end
    within `timeout` seconds; a slower receiver is a failed attempt like a 5xx.
    """
    started = time.monotonic()
    deadline = started + timeout
    address = checked.addresses[0]
    pool: urllib3.HTTPConnectionPool
    if checked.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            host=address,
            port=checked.port,
            server_hostname=checked.host,
            assert_hostname=checked.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
            maxsize=1,
            retries=False,
        )
    else:  # plain http: only where allow_local let `check_webhook_url` pass it
        pool = urllib3.HTTPConnectionPool(host=address, port=checked.port, maxsize=1, retries=False)
    request_headers = {**headers, "Host": checked.host_header, "User-Agent": USER_AGENT}
    try:
        response = pool.urlopen(
            "POST",
            checked.target,
            body=body,
            headers=request_headers,
            redirect=False,
            retries=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            assert_same_host=False,
        )
        read = 0
        try:
            while read < max_read:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return _answer(None, f"no complete answer within {timeout:g} s", read, started)
                chunk = response.read(min(16 * 1024, max_read - read), cache_content=False)
                if not chunk:
                    break
                read += len(chunk)
        finally:
            response.release_conn()
            response.close()
        if time.monotonic() > deadline:
            return _answer(None, f"no complete answer within {timeout:g} s", read, started)
        return _answer(response.status, None, read, started)
    except (HTTPError, OSError, ValueError) as error:
        return _answer(None, f"{type(error).__name__}: {error}"[:500], 0, started)
    finally:
        pool.close()


def _answer(status: int | None, error: str | None, read: int, started: float) -> HttpAnswer:
    return HttpAnswer(status, error, read, round((time.monotonic() - started) * 1000, 3))
