"""The practice manager's reports in a real Chromium (issue 17): sign in, open the reports from
the console, change the period and the vet, step to an earlier period, download a table as CSV
and find in it the numbers the page shows. Takes the README's screenshots of the page and of a
plot when asked (WAITROOM_SCREENSHOTS=1)."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

from tests.conftest import LiveServer
from tests.test_browser import SHOTS, TIMEOUT_MS, log_in
from tests.test_browser import browser as browser  # the Chromium fixture
from tests.test_browser import pytestmark as browser_marks
from tests.test_web_console import add_user

pytestmark = [*browser_marks]


def table_rows(html_rows: list[list[str]]) -> dict[str, list[str]]:
    return {r[0]: r[1:] for r in html_rows if r}


async def test_a_manager_changes_the_period_and_downloads_a_table(live_server: LiveServer, browser: Any) -> None:
    await add_user(live_server.db)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS * 3)
    await log_in(page, live_server)
    await page.get_by_role("link", name="Reports").click()
    await page.wait_for_url("**/console/reports**")
    # The seeded clinic has ten finished days before today (Monday, March 2): the month before.
    await page.select_option("#period", "month")
    await page.fill("#date", "2026-02-15")
    await page.click("#show")
    await page.wait_for_url("**period=month**")
    assert (await page.inner_text("#period-label")).startswith("February 2026")
    waits = page.locator("section#waits_by_vet table")
    cells = [[c.strip() for c in row] for row in await waits.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))")]
    shown = table_rows(cells)
    assert {"Dr. Ana Ruiz", "Dr. Ben Okafor", "Dr. Chloe Martin"} <= set(shown)
    # Every chart draws when scrolled to (lazy SVGs from the server, not broken images).
    charts = page.locator("img[src*='/console/reports/']")
    assert await charts.count() >= 3
    for i in range(await charts.count()):
        await charts.nth(i).scroll_into_view_if_needed()
        await charts.nth(i).evaluate("i => i.complete && i.naturalWidth > 0 ? true : new Promise((ok, no) => "
                                     "{ i.onload = () => ok(i.naturalWidth > 0); i.onerror = no; })")
        assert await charts.nth(i).evaluate("i => i.naturalWidth > 0")
    await page.evaluate("window.scrollTo(0, 0)")
    if SHOTS.name == "screenshots":
        await page.screenshot(path=str(SHOTS / "reports.png"), full_page=False)
        await page.locator("img[src*='/console/reports/waits.svg']").screenshot(path=str(SHOTS / "reports-waits.png"))
    # The CSV holds the page's numbers.
    async with page.expect_download() as got:
        await page.locator("section#waits_by_vet a.csv").click()
    download = await got.value
    assert download.suggested_filename == "waits_by_vet-2026-02-01-2026-02-28.csv"
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    table = {r["vet"]: r for r in csv.DictReader(io.StringIO(text))}
    assert {vet: list(r.values())[1:] for vet, r in table.items()} == shown
    # One vet, then the month before: the label and the rows follow.
    await page.select_option("#vet", "v2")
    await page.click("#show")
    await page.wait_for_url("**vet=v2**")
    one = table_rows([[c.strip() for c in row] for row in await waits.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))")])
    assert "Dr. Ben Okafor" in one and "Dr. Ana Ruiz" not in one
    await page.click("#prev")
    await page.wait_for_url("**date=2026-01-01**")
    assert (await page.inner_text("#period-label")).startswith("January 2026")
    assert "vet=v2" in page.url
    await context.close()
