"""The live dashboard in a real browser: Playwright driving Debian's Chromium."""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import git, set_line

from autoresearch.interfaces.dashboard import DashboardServer, read_state
from autoresearch.study.manual import run_experiment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def fetch(url: str, token: str | None = None, method: str = "GET"):
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_state_api_is_read_only_and_token_protected_off_loopback(tiny_workspace):
    run_experiment(tiny_workspace, "baseline")
    before = (tiny_workspace / ".autoresearch" / "ledger.sqlite").stat().st_mtime_ns
    with DashboardServer(tiny_workspace, port=0) as server:
        status, body = fetch(server.url + "api/state")
        assert status == 200 and json.loads(body)["best"]["description"] == "baseline"
        assert fetch(server.url, method="POST")[0] == 405
        assert fetch(server.url + "api/diff/999")[0] == 404
    assert (tiny_workspace / ".autoresearch" / "ledger.sqlite").stat().st_mtime_ns == before
    with DashboardServer(tiny_workspace, host="0.0.0.0", port=0) as server:
        assert server.token and server.url.endswith(f"?token={server.token}")
        base = f"http://127.0.0.1:{server.httpd.server_address[1]}/"
        assert fetch(base + "api/state")[0] == 401
        assert fetch(base + "api/state", token="wrong")[0] == 401
        assert fetch(base + "api/state", token=server.token)[0] == 200


@contextlib.contextmanager
def dashboard_page(ws, height: int = 1000):
    """The workspace's dashboard served on a free port and opened in Debian's Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with DashboardServer(ws, port=0) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(server.url)
        try:
            yield page
        finally:
            browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh installs it in CI)")
def test_page_loads_updates_live_and_opens_a_diff(tiny_workspace, tmp_path):
    ws = tiny_workspace
    run_experiment(ws, "baseline")
    set_line(ws / "train.py", "ORDER = ", "ORDER = 3")
    run_experiment(ws, "order 3")
    with dashboard_page(ws) as page:
        page.wait_for_selector("#experiments tbody tr >> nth=1")
        assert page.locator("#experiments tbody tr").count() == 2
        assert "2 experiments · 2 kept" in page.locator("#summary").inner_text()
        # a new experiment lands while the page is open: it appears without a reload
        set_line(ws / "train.py", "ORDER = ", "ORDER = 0")
        run_experiment(ws, "order 0")
        page.wait_for_function("document.querySelectorAll('#experiments tbody tr').length === 3", timeout=10_000)
        assert page.locator("circle.discard").count() == 1
        # hover text and a click on a point opens its diff
        assert "order 3" in page.locator("circle[data-id='2'] title").text_content()
        page.locator("circle[data-id='2']").click()
        page.wait_for_function("document.getElementById('diff').textContent.includes('+ORDER = 3')")
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    Path(tmp_path / "state.json").write_text(json.dumps(read_state(ws)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh installs it in CI)")
def test_a_running_experiments_curve_is_drawn_live_against_the_incumbents_band(tiny_workspace, tmp_path):
    import threading

    from helpers import ListProposer, curve_task

    from autoresearch.study.study import StudyOptions, run_study

    ws = tiny_workspace
    curve_task(ws, "\n[early_abort]\nenabled = true\ncheckpoints = [0.3, 0.5]\n")
    set_line(ws / "train.py", "BUDGET = ", "BUDGET = 4.0")
    git(ws, "commit", "-qam", "four seconds")
    study = threading.Thread(target=run_study, args=(ws, [ListProposer([6.0, 1.2])], StudyOptions(
        max_experiments=3, pipeline=False)))
    study.start()
    with dashboard_page(ws, height=1100) as page:
        # the hopeless candidate is stopped and drawn as such; then the next one runs against the band.
        # Generous limits: three baseline runs come first, and a loaded 2-core CI machine takes ~70 s to get here
        page.wait_for_selector("path.stopped", timeout=300_000)
        page.wait_for_function("(() => { const p = document.querySelector('path.running[data-id=\"3\"]');"
                               " return p && p.getAttribute('d').split('L').length > 12; })()", timeout=120_000)
        assert page.locator("polygon.band").count() == 1 and page.locator("path.incumbent").count() == 1
        drawn = page.locator("#curves").text_content()
        assert "#2 stopped" in drawn and "best #1" in drawn and "#3 " in drawn
        shot = tmp_path / "dashboard-curves.png"
        page.locator("#curves").screenshot(path=str(shot))
    study.join(timeout=120)
    assert shot.stat().st_size > 10_000
    state = read_state(ws)
    assert state["curves"]["incumbent"]["id"] == 1 and len(state["curves"]["incumbent"]["points"]) > 30
