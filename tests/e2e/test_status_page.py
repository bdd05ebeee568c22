"""The status page in headless Chromium: lists the dev user's jobs and polls them with If-None-Match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningStack, submit

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def page() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium to run the status page test"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_the_page_lists_the_dev_users_jobs_and_polls_them_with_etags(stack: RunningStack, page: Any) -> None:
    conditional: list[str] = []
    page.on(
        "request",
        lambda request: (
            conditional.append(request.url)
            if "/v1/jobs/" in request.url and request.headers.get("if-none-match")
            else None
        ),
    )
    with stack.client("root", admin=True) as admin, stack.client("dev") as dev:
        # Given a job of the dev user, listed by the page
        (first,) = submit(dev, 1)
        page.goto(stack.url + "/")
        page.wait_for_selector(f'tr[data-job-id="{first}"]', timeout=30_000)
        # and Fal's invoker switched off, so the next job stays QUEUED
        assert admin.post("/local/functions/FalInvokerFn/disable").status_code == 200
        try:
            # When a job is submitted from the page itself
            page.fill("#prompt", "from the browser")
            page.click("#submit")
            page.wait_for_selector("#message:has-text('Submitted')", timeout=10_000)
            second = page.text_content("#message").split()[-1]
            # Then the unfinished job is polled with If-None-Match and answered 304
            page.wait_for_function(
                "Number(document.getElementById('not-modified').textContent) > 0", timeout=20_000
            )
        finally:
            assert admin.post("/local/functions/FalInvokerFn/enable").status_code == 200
        # And both reach an end state on the page once the invoker runs again
        for job_id in (first, second):
            row = f'tr[data-job-id="{job_id}"]'
            done = f'{row}[data-status="COMPLETED"], {row}[data-status="FAILED"]'
            page.wait_for_selector(done, timeout=30_000)
    assert any(second in url for url in conditional)
    assert page.text_content("#user") == "dev"
    # Another user's jobs are not on the dev user's page.
    with stack.client("zed") as zed:
        (other,) = submit(zed, 1)
    page.reload()
    page.wait_for_selector(f'tr[data-job-id="{first}"]', timeout=30_000)
    assert page.query_selector(f'tr[data-job-id="{other}"]') is None
