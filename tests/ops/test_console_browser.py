"""The operator console in a real headless browser (Debian's chromium, Chrome DevTools protocol
over a pipe): `geosentry run --http-port` replays the BW.UH1-UH4 recordings at 8x, the page
loads, and its tables, map and waveform update over server-sent events while data arrives.
Screenshots are written to the test's tmp dir (or $GEOSENTRY_SCREENSHOTS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cdp import CHROMIUM, Browser
from opshelpers import ROOT, UH_INVENTORY, Service, demo_archive, free_port, screenshot_dir

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it "
                             "as root: apt-get install chromium)")

ROWS = "document.querySelectorAll('#{} tbody tr').length"


def test_console_loads_and_updates_live(tmp_path: Path) -> None:
    archive = demo_archive(tmp_path / "archive")
    (tmp_path / "stations.csv").write_text(UH_INVENTORY)
    port = free_port()
    config = (f'[console]\ninventory = "{tmp_path / "stations.csv"}"\nwaveform_s = 240\n')
    svc = Service(tmp_path, "--source", str(archive), "--speed", "8", "--http-port", str(port),
                  "--sink", f"jsonl:{tmp_path / 'alerts.jsonl'}", config=config)
    shots = screenshot_dir(tmp_path)
    browser = None
    try:
        base = f"http://127.0.0.1:{port}"
        svc.wait_http(f"{base}/api/summary")
        browser = Browser(tmp_path)
        browser.open(f"{base}/?station=BW.UH3")
        browser.wait_for("document.body.dataset.ready === '1'")
        start = browser.js("({records: +document.querySelector('#summary').textContent"
                           ".split(' · ')[1].replace(/[^0-9]/g, ''), picks: "
                           + ROWS.format("picks") + "})")
        browser.screenshot(shots / "console-start.png")
        # live: the page is never reloaded; rows arrive over the event stream
        browser.wait_for("+document.body.dataset.sse > 3", 30)
        browser.wait_for(ROWS.format("picks") + " > " + str(start["picks"]), 60)
        browser.wait_for(ROWS.format("detections") + " >= 3", 60)
        assert browser.js(ROWS.format("stations")) == 4
        states = browser.js("[...document.querySelectorAll('#stations td.state')]"
                            ".map(e => e.textContent)")
        assert set(states) <= {"ok", "gap"}, states
        records = browser.wait_for(
            f"(() => {{ const n = +document.querySelector('#summary').textContent.split(' · ')[1]"
            f".replace(/[^0-9]/g, ''); return n > {start['records']} ? n : 0; }})()", 30)
        assert records > start["records"]
        assert browser.js("document.querySelector('#live').textContent") == "live"
        # map: the four inventory stations as SVG triangles, no external resources
        assert browser.wait_for("document.querySelectorAll('#map [data-station]').length") == 4
        # waveform of BW.UH3 with its picks drawn on it
        assert browser.wait_for("document.querySelectorAll('#wave path.trace').length") == 1
        browser.wait_for("document.querySelectorAll('#wave line[data-kind]').length > 0", 60)
        # details of a pick on click
        row = browser.js("(() => { const r = document.querySelector('#picks tbody tr');"
                         " r.click(); return r.dataset.id; })()")
        browser.wait_for("!document.querySelector('#details').hidden")
        title = browser.js("document.querySelector('#details-title').textContent")
        assert title.startswith("pick · BW.UH"), title
        shown = browser.js("JSON.parse(document.querySelector('#details-json').textContent)")
        assert shown["kind"] == "pick" and shown["schema"] == "geosentry.alert.v1"
        assert shown["id"] == row
        browser.js("document.querySelector('#details-close').click()")
        browser.screenshot(shots / "console.png")
        resources = browser.js("performance.getEntriesByType('resource').map(r => r.name)")
        assert all(r.startswith(base) for r in resources), resources  # works offline
    finally:
        if browser is not None:
            browser.close()
        code = svc.stop()
    assert code == 0, svc.log()
    assert (shots / "console.png").stat().st_size > 20_000


@pytest.mark.shared
def test_console_maps_located_events(tmp_path: Path, shared_data: Callable[[str], Path]) -> None:
    """The Iceland 2014 dike swarm through picker -> association -> location (the events stage of
    deploy/events/iceland.toml) at 20x: events appear in their table and on the map (stations
    from the [stations] inventory), with their details on click."""
    data = shared_data("events/iceland-2014-dike")
    config = (ROOT / "deploy" / "events" / "iceland.toml").read_text().replace(
        "../shared/data/events/iceland-2014-dike", str(data))
    # only the miniSEED files: the folder's text files (picks, amplitudes) have no time and
    # would make a paced replay wait from 1970 (FileSource paces from the first entry)
    waveforms = tmp_path / "waveforms"
    waveforms.mkdir()
    for f in (data / "events").glob("*.m"):
        (waveforms / f.name).symlink_to(f)
    port = free_port()
    svc = Service(tmp_path, "--source", str(waveforms), "--speed", "20", "--http-port",
                  str(port), "--sink", f"jsonl:{tmp_path / 'alerts.jsonl'}", config=config)
    shots = screenshot_dir(tmp_path)
    browser = None
    try:
        base = f"http://127.0.0.1:{port}"
        svc.wait_http(f"{base}/api/summary")
        browser = Browser(tmp_path)
        browser.open(f"{base}/?station=Z7.FLUR")
        browser.wait_for("document.body.dataset.ready === '1'")
        browser.wait_for(ROWS.format("events") + " >= 3", 120)
        assert browser.wait_for("document.querySelectorAll('#map circle.event').length >= 3", 30)
        assert browser.js("document.querySelectorAll('#map [data-station]').length") >= 5
        browser.wait_for("document.querySelectorAll('#wave line[data-kind=\"pick\"]').length > 0", 60)
        browser.js("document.querySelector('#map circle.event').dispatchEvent("
                   "new MouseEvent('click', {bubbles: true}))")
        browser.wait_for("!document.querySelector('#details').hidden")
        shown = browser.js("JSON.parse(document.querySelector('#details-json').textContent)")
        assert shown["kind"] == "event" and "latitude" in shown["details"]["origin"]
        facts = browser.js("document.querySelector('#details-facts').textContent")
        assert "event_id" in facts
        browser.js("document.querySelector('#details-close').click()")
        browser.screenshot(shots / "console-events.png")
    finally:
        if browser is not None:
            browser.close()
        code = svc.stop()
    assert code == 0, svc.log()
