"""The status page in headless Chromium: live over the socket, polling with If-None-Match without it.

A screenshot of each run is left in the temporary folder (`status-page.png`) to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import MODEL, RunningStack, submit, wait_until_finished

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


# Before the page's script runs: a WebSocket that never opens, as behind a proxy that refuses upgrades.
NO_SOCKET = """
window.WebSocket = class {
  constructor() { setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 10); }
  send() {}
  close() {}
};
"""


def ended(job_id: str) -> str:
    row = f'tr[data-job-id="{job_id}"]'
    return f'{row}[data-status="COMPLETED"], {row}[data-status="FAILED"]'


def test_the_page_falls_back_to_polling_with_etags_when_the_socket_cannot_open(
    stack: RunningStack, page: Any
) -> None:
    page.add_init_script(NO_SOCKET)
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
        page.wait_for_selector('#connection[data-state="polling"]', timeout=10_000)
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


def test_the_page_is_live_over_the_socket_and_survives_a_killed_socket(
    stack: RunningStack, page: Any, tmp_path: Path
) -> None:
    job_gets: list[str] = []  # GET /v1/jobs/{id}: what polling would cost
    lists: list[str] = []
    page.on(
        "request",
        lambda request: (
            (job_gets if "/v1/jobs/" in request.url else lists).append(request.url)
            if request.method == "GET" and "/v1/jobs" in request.url
            else None
        ),
    )
    with stack.client("root", admin=True) as admin, stack.client("dev") as dev:
        # Given a few finished jobs of the dev user (one in five fails at the simulated Fal)
        earlier = submit(dev, 5)
        wait_until_finished(dev, earlier)
        # When the page opens: a loading state, then the list, and the indicator says live
        page.goto(stack.url + "/")
        page.wait_for_selector('#connection[data-state="live"]', timeout=15_000)
        page.wait_for_selector(f'tr[data-job-id="{earlier[-1]}"]', timeout=30_000)
        assert page.query_selector("#loading") is None
        listed = len(lists)
        # and a job is submitted from the page while Fal's invoker is off: it shows QUEUED at once
        assert admin.post("/local/functions/FalInvokerFn/disable").status_code == 200
        try:
            page.fill("#prompt", "a heron at dusk")
            page.click("#submit")
            page.wait_for_selector("#message:has-text('Submitted')", timeout=10_000)
            job_id = page.text_content("#message").split()[-1]
            row = f'tr[data-job-id="{job_id}"]'
            page.wait_for_selector(f'{row}[data-status="QUEUED"]', timeout=5_000)
            assert page.text_content(f"{row} td.model") == MODEL
            assert page.text_content(f"{row} td.prompt") == "a heron at dusk"
        finally:
            assert admin.post("/local/functions/FalInvokerFn/enable").status_code == 200
        # Then it reaches its end state over the socket alone: no GET of the job, no new listing
        page.wait_for_selector(ended(job_id), timeout=30_000)
        assert job_gets == [] and len(lists) == listed
        assert int(page.text_content("#messages") or "0") > 0

        # When the socket dies mid-job (closed under the page) while a second job runs
        assert admin.post("/local/functions/FalInvokerFn/disable").status_code == 200
        try:
            page.fill("#prompt", "a second heron")
            page.click("#submit")
            page.wait_for_function("document.getElementById('message').textContent.includes('Submitted')")
            page.wait_for_function(f"!document.getElementById('message').textContent.includes('{job_id}')")
            second = page.text_content("#message").split()[-1]
            page.evaluate("window.statusPage.socket().close()")
            page.wait_for_selector('#connection:not([data-state="live"])', timeout=5_000)
        finally:
            assert admin.post("/local/functions/FalInvokerFn/enable").status_code == 200
        # Then the page still shows the job's final state, and is live again
        page.wait_for_selector(ended(second), timeout=30_000)
        page.wait_for_selector('#connection[data-state="live"]', timeout=15_000)
        final = dev.get(f"/v1/jobs/{second}").json()
        assert page.get_attribute(f'tr[data-job-id="{second}"]', "data-status") == final["status"]

        # Each row: model, prompt, the output as a link, relative times with the full time on hover
        completed = [j for j in earlier if dev.get(f"/v1/jobs/{j}").json()["status"] == "COMPLETED"]
        assert completed, "all five jobs failed at the simulated Fal"
        done = f'tr[data-job-id="{completed[0]}"]'
        body = dev.get(f"/v1/jobs/{completed[0]}").json()
        assert page.get_attribute(f"{done} td.output a", "href") == body["outputUrl"]
        assert page.text_content(f"{done} td.prompt") == body["input"]["prompt"]
        created = page.text_content(f"{done} td.created time") or ""
        assert created == "just now" or created.endswith(" ago"), created
        assert page.get_attribute(f"{done} td.created time", "datetime") == body["createdAt"]
        assert page.get_attribute(f"{done} td.created time", "title")
        page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)

        # The status filter: only FAILED rows, fetched with status=FAILED
        page.select_option("#status-filter", "FAILED")
        page.wait_for_function(
            "[...document.querySelectorAll('#jobs tbody tr')].every(r => r.dataset.status === 'FAILED')"
        )
        assert "status=FAILED" in lists[-1]
        page.select_option("#status-filter", "")
        page.wait_for_selector(f'tr[data-job-id="{earlier[0]}"]', timeout=10_000)

    # Paging: two jobs a page, older then newer again
    page.goto(stack.url + "/?limit=2")
    page.wait_for_selector('#connection[data-state="live"]', timeout=15_000)
    page.wait_for_selector("#jobs tbody tr[data-job-id]", timeout=10_000)
    first_page = page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.jobId)")
    assert len(first_page) == 2 and page.is_disabled("#newer")
    page.click("#older")
    page.wait_for_selector("#page-number:has-text('page 2')")
    page.wait_for_function(f"!document.querySelector('tr[data-job-id=\"{first_page[0]}\"]')")
    second_page = page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.jobId)")
    assert len(second_page) == 2 and not set(second_page) & set(first_page)
    assert "cursor=" in lists[-1]
    page.click("#newer")
    page.wait_for_selector("#page-number:has-text('page 1')")
    page.wait_for_selector(f'tr[data-job-id="{first_page[0]}"]')
    assert page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.jobId)") == first_page
