"""The radar page in headless Chromium (Debian's): it connects, draws a known scene in the
right places, shows the narration, health and a streamed answer (issue 21)."""

import os
import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from agent.serve import Hub, serve
from agent.track.events import HealthEvent, NarrationEvent, OffsetEvent, OnsetEvent, UpdateEvent

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"Debian chromium is not installed at {CHROMIUM} (make setup installs it)")
TOKEN = "page-token-123"
ANSWER = ["The dog ", "is on ", "your left, ", "about 2 m away."]
#: Where each marker's dot is, relative to the listener's head, in screen pixels (+x right, +y down).
POSITIONS_JS = """() => {
  const c = document.getElementById('listener').getBoundingClientRect();
  const cx = c.x + c.width / 2, cy = c.y + c.height / 2;
  return [...document.querySelectorAll('#tracks .track')].map(g => {
    const r = g.querySelector('.dot').getBoundingClientRect();
    return {id: +g.dataset.trackId, label: g.dataset.label, az: +g.dataset.azimuthDeg,
            dx: r.x + r.width / 2 - cx, dy: r.y + r.height / 2 - cy};
  });
}"""


def track(kind, tid, label, az, dist, t_s, t_end=None):
    return kind(t_s, track_id=tid, label=label, azimuth_deg=az, elevation_deg=0.0, distance_m=dist,
                confidence=0.9, uncertainty_deg=4.0, t_start=t_s - 0.2, t_end=t_end)


class GatedAsker:
    """Yields the first chunk, then waits until the test has seen it on the page: proof that
    the answer streams, with no race against the machine's speed."""

    def __init__(self):
        self.go = threading.Event()

    def __call__(self, question):
        yield ANSWER[0]
        self.go.wait(10)
        yield from ANSWER[1:]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # the dev extra; CI installs it

    args = ["--disable-dev-shm-usage"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("#status[data-state=live]", timeout=10_000)
    return page, errors


def test_radar_shows_a_known_scene_the_log_health_and_a_streamed_answer(browser):
    hub = Hub()
    asker = GatedAsker()
    hub.set_asker(asker)
    hub.publish(track(OnsetEvent, 1, "dog", 90.0, 2.0, t_s=1.0))  # before the page: from the snapshot
    with serve(hub, port=0, token=TOKEN) as server:
        page, errors = open_page(browser, server.page_url)  # the token travels with the page
        hub.publish(track(OnsetEvent, 2, "bird", -45.0, 1.0, t_s=1.5))  # live over the WebSocket
        hub.publish(track(OnsetEvent, 3, "siren", 180.0, 4.0, t_s=1.6))
        hub.publish(NarrationEvent(1.7, "a siren started behind you, about 4 m away", 3, "siren"))
        hub.publish(HealthEvent(1.8, {"overflows": 3, "bridge_gaps": 0}))
        expect(page.locator("#tracks .track")).to_have_count(3)
        pos = {p["label"]: p for p in page.evaluate(POSITIONS_JS)}
        ring = {k: (v["dx"] ** 2 + v["dy"] ** 2) ** 0.5 for k, v in pos.items()}
        assert ring["bird"] > 20  # outside the drawn head
        assert pos["dog"]["dx"] < -0.9 * ring["dog"]  # +90: left of the head
        assert pos["bird"]["dx"] > 0 and pos["bird"]["dy"] < 0  # -45: right and ahead (up)
        assert abs(pos["bird"]["dx"] + pos["bird"]["dy"]) < 0.05 * ring["bird"]  # on the diagonal
        assert pos["siren"]["dy"] > 0.9 * ring["siren"]  # 180: below
        assert ring["bird"] < ring["dog"] < ring["siren"]  # 1 m < 2 m < 4 m
        assert {p["label"]: p["az"] for p in pos.values()} == {"dog": 90.0, "bird": -45.0, "siren": 180.0}
        assert page.text_content("#log li:first-child").endswith("a siren started behind you, about 4 m away")
        page.wait_for_selector("#health dd[data-counter=overflows]:text-is('3')")

        page.fill("#question", "where is the dog?")
        page.press("#question", "Enter")
        # it streams: the page shows the first chunk while the asker is still making the rest
        page.wait_for_selector("#answer[data-state=streaming][data-chunks='1']", timeout=10_000)
        assert page.text_content("#answer") == ANSWER[0]
        asker.go.set()
        page.wait_for_selector("#answer[data-state=done]", timeout=10_000)
        assert page.text_content("#answer") == "".join(ANSWER)
        assert page.get_attribute("#answer", "data-chunks") == str(len(ANSWER))
        assert "where is the dog?" in page.text_content("#log li:first-child")

        hub.publish(track(OffsetEvent, 2, "bird", -45.0, 1.0, t_s=3.0, t_end=2.0))
        hub.publish(track(UpdateEvent, 1, "dog", -90.0, 2.0, t_s=3.0))  # the dog crossed to the right
        expect(page.locator("#tracks .track")).to_have_count(2)
        page.wait_for_selector(".track[data-track-id='1'][data-azimuth-deg='-90']")
        page.wait_for_timeout(600)  # the marker glides (0.4 s transition)
        dog = next(p for p in page.evaluate(POSITIONS_JS) if p["label"] == "dog")
        assert dog["dx"] > 0.9 * ring["dog"]
        assert errors == []
        page.close()


def test_page_without_token_on_loopback_connects_and_reconnects(browser):
    hub = Hub()
    hub.publish(track(OnsetEvent, 7, "speech", 0.0, 1.0, t_s=0.5))
    with serve(hub, port=0) as server:
        page, errors = open_page(browser, server.url)
        pos = page.evaluate(POSITIONS_JS)
        assert len(pos) == 1 and pos[0]["dy"] < 0 and abs(pos[0]["dx"]) < 1  # ahead: straight up
        port = server.port
    page.wait_for_selector("#status[data-state=offline]", timeout=5_000)
    with serve(hub, port=port):  # the same address again: the page finds it by itself
        page.wait_for_selector("#status[data-state=live]", timeout=10_000)
    assert [e for e in errors if "WebSocket" not in e and "ERR_CONNECTION_REFUSED" not in e] == []
    page.close()
