"""The HTML reports in a real headless browser: Debian's chromium driven by Selenium.

A run report and a sweep report are opened from file:// as a user would open them; the page
must log no console error, every figure must have loaded (an <img> with a natural width, an
<svg> with a size), and the structure a reader relies on must be there: the title, the
description at the top, the invariant check and the warnings, and the summary table.

Without chromium, chromium-driver or selenium the tests skip and say how to install them
(`apt-get install -y chromium chromium-driver`, `pip install -e '.[test]'`). CI installs the
browser (.ci/run) and sets KAFKASIM_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import analysis
import sim
from tests.conftest import skip_unless_required

ROOT = Path(__file__).resolve().parents[1]

INSTALL = ("install them with `apt-get install -y chromium chromium-driver` (Debian/Ubuntu, as root) and "
           "`pip install -e '.[test]'` (selenium)")

# 8 short runs: acks 1/all x (RF 2, min.insync 1) / (RF 3, min.insync 2) x seeds 1, 2; a leader crash at 2 s.
SWEEP = {
    "name": "browser-test",
    "description": "Browser test sweep: acks 1 and all against two replication settings, a leader crash at 2 s.",
    "scenario": str(ROOT / "scenarios" / "quickstart.yaml"),
    "set": {
        "duration": "4s", "settle": "3s", "faults.0.at": "2s", "faults.0.restart_after": "1s",
        "producers.0.enable.idempotence": None, "producers.0.rate": "10000/s", "topics.0.partitions": 2,
        "cluster.broker.heartbeat.interval.ms": 250, "cluster.broker.session.timeout.ms": 750,
    },
    "grid": {"producers.0.acks": [1, "all"]},
    "zip": [{"topics.0.replication.factor": [2, 3], "topics.0.min.insync.replicas": [1, 2]}],
    "seeds": [1, 2],
}

CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"]


def _browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or skip (fail under KAFKASIM_REQUIRE_BROWSER=1) saying how to install them."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    chrome = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if chrome is None:
        missing.append("a chromium binary (chromium)")
    if driver is None:
        missing.append("chromedriver (chromium-driver)")
    if missing:
        skip_unless_required(f"browser test needs {', '.join(missing)}: {INSTALL}", "KAFKASIM_REQUIRE_BROWSER")
    return chrome, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chrome, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "sweep"
    sim.sweep(SWEEP, out=out, workers=1)
    return out


@pytest.fixture(scope="module")
def run_dir(sweep_dir, tmp_path_factory) -> Path:
    """A run of the sweep, copied, with a warning and an invariant violation written into its summary."""
    study = analysis.load_sweep_results(sweep_dir)
    src = study.run_dir(study.ok["run_id"].iloc[0])
    dest = tmp_path_factory.mktemp("browser-run") / "run"
    shutil.copytree(src, dest)
    summary = json.loads((dest / "summary.json").read_text())
    summary["warnings"] = ["acks=1 with idempotence off: a retried batch can be written twice"]
    summary["invariant_violations"] = 2
    summary["invariant_examples"] = ["hw_monotone: broker 1 events-0 HW 120 -> 80 within epoch 3", "example two"]
    (dest / "summary.json").write_text(json.dumps(summary))
    return dest


def _open(browser, page: Path) -> list[dict]:
    """Load `page` from file:// after clearing the log; returns the SEVERE console entries."""
    browser.get_log("browser")  # drop whatever an earlier page logged
    browser.get(page.resolve().as_uri())
    # `get` can return before the load event on a loaded machine (a big sweep page, 2 busy cores):
    # wait for it rather than read readyState once.
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 120, poll_frequency=0.2).until(
        lambda d: d.execute_script("return document.readyState") == "complete",
        message=f"{page.name} did not finish loading within 120 s")
    return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


def _figures(browser) -> list[dict]:
    return browser.execute_script("""
        const imgs = Array.from(document.images).map(i => ({tag: 'img', alt: i.alt, complete: i.complete,
            width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}));
        const svgs = Array.from(document.querySelectorAll('svg')).map(s => ({tag: 'svg', alt: s.id,
            complete: true, width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height,
            shown: s.getBoundingClientRect().width}));
        return imgs.concat(svgs);""")


def _text(browser, css: str) -> str:
    from selenium.webdriver.common.by import By

    el = browser.find_element(By.CSS_SELECTOR, css)
    assert el.is_displayed(), css
    return el.text


def _rows(browser, css: str) -> int:
    from selenium.webdriver.common.by import By

    return len(browser.find_elements(By.CSS_SELECTOR, f"{css} tbody tr"))


def _assert_figures_loaded(figures: list[dict], n: int) -> None:
    assert len(figures) == n, figures
    for f in figures:
        assert f["complete"] and f["width"] > 0 and f["height"] > 0 and f["shown"] > 0, f


def test_run_report_in_browser(browser, run_dir, tmp_path):
    page = analysis.write_report(run_dir, tmp_path / "run.html")
    severe = _open(browser, page)
    assert severe == [], severe
    run = analysis.load_run(run_dir)
    assert browser.title == f"kafkasim run report: {run.label}"
    assert _text(browser, "h1") == browser.title
    assert run.scenario["description"] in _text(browser, "#description")
    # the description comes first, before the checks and the tables
    order = browser.execute_script("return ['#description', '#checks', '#summary']"
                                   ".map(s => document.querySelector(s).getBoundingClientRect().top)")
    assert order == sorted(order)
    checks = _text(browser, "#invariant-violations")
    assert "2 violations" in checks and "hw_monotone: broker 1 events-0" in checks
    assert "acks=1 with idempotence off" in _text(browser, "#warnings")
    assert _rows(browser, "table#summary") >= 10
    _assert_figures_loaded(_figures(browser), 3)  # timeline, latency, failover distribution


def test_sweep_report_in_browser(browser, sweep_dir, tmp_path):
    page = analysis.write_report(sweep_dir, tmp_path / "sweep.html")
    severe = _open(browser, page)
    assert severe == [], severe
    assert browser.title == "kafkasim sweep report: browser-test"
    assert SWEEP["description"] in _text(browser, "#description")
    assert "0 violations in 8 of 8 finished runs" in _text(browser, "#invariant-violations")
    _text(browser, "#warnings")
    assert _rows(browser, "table#groups") == 4  # acks 1/all x two replication settings
    assert _rows(browser, "table#runs") == 8
    headers = browser.execute_script(
        "return Array.from(document.querySelectorAll('table#runs thead th')).map(th => th.textContent)")
    assert not [h for h in headers if h.startswith(("producers.", "topics."))], headers  # readable, each once
    assert len(headers) == len(set(headers)), headers
    _assert_figures_loaded(_figures(browser), 5)  # loss map, latency, throughput, failover distribution, timeline
