"""The dashboard at /ui in a real headless Chromium (Debian's `chromium` driven by Playwright) against a real
`tswatch serve`: key prompt, models with metrics and curves, forecast chart with bands, anomalies from a
pasted CSV, a stream's alarm showing up live (polling, no reload), the webhooks page, and no console errors.

Needs `apt-get install -y chromium` and `pip install playwright` (no `playwright install`: the system browser
is used). Without either the tests are skipped with the reason, and a warning says so in the summary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The browser sees only HTTP: the server's backend is covered by the API suites, so one (SQLite) run suffices.
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.sqlite_only]

CHROMIUM = Path(os.environ.get("TSWATCH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("TSWATCH_UI_SCREENSHOTS", "/tmp"))
TIMEOUT_MS = 15_000
START = datetime(2024, 3, 1)


def missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the Python package `playwright` is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture
def browser_page() -> Iterator[tuple[Any, list[str]]]:
    """A fresh page in headless Chromium, and the list its console errors and page errors are collected in."""
    reason = missing_browser()
    if reason is not None:
        message = f"BROWSER TESTS SKIPPED: {reason}"
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            yield page, errors
            context.close()
        finally:
            browser.close()


def create_key(run_cli, models_dir: Path, role: str) -> str:
    result = run_cli(models_dir, "keys", "create", "--role", role, "--name", f"ui-{role}", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["key"]


def hourly(points: int, spike_at: int | None = None, seed: int = 3) -> tuple[list[datetime], list[float]]:
    rng = np.random.default_rng(seed)
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, points)
    if spike_at is not None:
        values[spike_at] += 60.0
    return [START + timedelta(hours=int(h)) for h in hours], [float(v) for v in values]


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"ui-{name}.png"), full_page=True)


def open_model_page_and_score_csv(page: Any) -> None:
    page.click("a.model-link")
    chart = page.locator("#forecast-chart svg.chart")
    chart.wait_for()
    # the forecast median, its 80% and 95% bands, and the one-step band over the recent data
    page.wait_for_function("document.querySelectorAll('#forecast-chart path.band-forecast').length >= 2")
    assert page.locator("#forecast-chart path.line-forecast").count() == 1
    assert page.locator("#forecast-chart path.band-detect").count() >= 1
    assert page.locator("#forecast-chart path.line-actual").count() >= 1
    assert "forecast 6 step(s) by tiny v1" in page.locator("#model-status").inner_text()
    assert page.locator("#version-info svg.chart").count() == 2  # training curves and residual histogram
    assert page.locator("#version-info rect.bar-residual").count() > 0
    # detection calibrates on the series it scores: no training-calibration thresholds on the histogram
    assert page.locator("#version-info .rule-threshold").count() == 0

    # a pasted CSV with one wild point: flagged and drawn as a marker
    stamps, values = hourly(120, spike_at=100)
    csv = "timestamp,value\n" + "\n".join(
        f"{s.isoformat()}Z,{v:.4f}" for s, v in zip(stamps, values, strict=True)
    )
    page.evaluate(
        "() => { const s = document.getElementById('sensitivity-input'); s.value = '0.8';"
        " s.dispatchEvent(new Event('input')); }"
    )
    page.fill("#csv-input", csv)
    page.click("#csv-score")
    page.wait_for_function("document.querySelector('#model-status').textContent.includes('your CSV')")
    page.locator("#forecast-chart circle.anomaly").first.wait_for()
    assert "120 points from your CSV" in page.locator("#model-status").inner_text()
    assert "2024-03-05 04:00" in page.locator("#anomaly-list").inner_text()  # hour 100 after START


def test_dashboard_with_a_read_key_in_a_real_browser(models_dir, run_cli, server_factory, browser_page):
    page, errors = browser_page
    read_key = create_key(run_cli, models_dir, "read")
    write_key = create_key(run_cli, models_dir, "write")
    server = server_factory(models_dir)

    # the page and its scripts need no key; the data does
    with server.client() as anonymous:
        assert anonymous.get("/ui/").status_code == 200
        assert anonymous.get("/ui/static/app.js").status_code == 200
        assert anonymous.get("/v1/ui/streams").status_code == 401

    page.goto(f"{server.base_url}/ui/")
    page.locator("#key-form").wait_for()
    page.fill("#key-input", "tsw_not-a-real-key")
    page.click("#key-save")
    page.wait_for_function("document.getElementById('key-problem').textContent.length > 0")
    assert page.locator("#key-form").is_visible()

    page.fill("#key-input", read_key)
    page.click("#key-save")
    card = page.locator('.model-card[data-model="tiny"]')
    card.wait_for()
    page.wait_for_function("document.querySelectorAll('.model-card svg.chart path.line').length >= 2")
    table = card.locator("table.metrics").inner_text()
    for text in ("v1", "v2", "production", "model", "seasonal naive", "random walk", "MASE (seasonal)"):
        assert text in table, text
    assert "role read" in page.locator("#who").inner_text()
    assert page.evaluate("sessionStorage.getItem('tswatch.apiKey')") == read_key
    shoot(page, "models")

    open_model_page_and_score_csv(page)
    shoot(page, "model")

    # streams: the live view picks up a new stream and its alarm without reloading the page
    page.goto(f"{server.base_url}/ui/#/streams")  # same tab: the key is still in sessionStorage
    page.locator("#streams-updated").wait_for()
    page.wait_for_function("document.getElementById('streams-updated').textContent.includes('updated')")
    page.evaluate("window.__sameDocument = true")
    stamps, values = hourly(50, spike_at=40)  # the stream learns from the first 20, scores the rest
    with server.client(write_key) as client:
        config = {"model": "tiny", "sensitivity": 0.9, "learning_points": 20}  # see webhooks/helpers.py
        created = client.put("/v1/streams/ui-demo", json=config)
        assert created.status_code == 201, created.text
        points = [{"timestamp": s.isoformat() + "Z", "value": v} for s, v in zip(stamps, values, strict=True)]
        appended = client.post("/v1/streams/ui-demo/points", json={"points": points})
        assert appended.status_code == 200, appended.text
        assert appended.json()["points"][40]["is_anomaly"]
        open_alarm = client.get("/v1/streams/ui-demo").json()["open_alarm"]
    stream = page.locator('.stream-card[data-stream="ui-demo"]')
    stream.locator("circle.anomaly").first.wait_for(timeout=10_000)
    assert page.evaluate("window.__sameDocument === true")  # polled, not reloaded
    assert stream.locator("path.band-detect").count() >= 1
    assert stream.locator(".stream-scores path.line-score").count() >= 1
    assert stream.locator("table.episodes tbody tr").count() >= 1
    badge = ".badge-alarm" if open_alarm else ".badge-ok"
    assert stream.locator(badge).count() == 1
    assert "50 points" in stream.inner_text()
    shoot(page, "streams")

    page.click('nav a[data-nav="webhooks"]')
    page.locator("#webhooks-forbidden, #webhooks-placeholder").first.wait_for()
    shoot(page, "webhooks")

    assert errors == [], errors


def test_dashboard_in_open_mode_needs_no_key(models_dir, server_factory, browser_page):
    page, errors = browser_page
    server = server_factory(models_dir)
    page.goto(f"{server.base_url}/ui/#/models")
    page.locator('.model-card[data-model="tiny"]').wait_for()
    assert page.locator("#key-form").is_hidden()
    assert "open server" in page.locator("#who").inner_text()
    page.goto(f"{server.base_url}/ui/#/webhooks")
    # the anonymous caller of an open server is an admin: the endpoints list (or the placeholder) shows
    page.locator("#webhook-endpoints, #webhooks-placeholder").first.wait_for()
    shoot(page, "webhooks-open")
    page.goto(f"{server.base_url}/ui/#/streams")
    page.locator("#stream-list .empty").wait_for()
    assert errors == [], errors
