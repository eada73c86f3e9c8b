"""``nextup demo`` as a person runs it: one command, a whole hall, Ctrl-C and nothing left behind.

The demo runs as a process (its own Mosquitto, central, kiosk, four point units
and a display); the tests drive it only through what it prints and serves.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import wait_until
from PIL import Image, ImageChops

from broker.mosquitto import free_port

START_TIMEOUT_S = 40
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:")  # the demo's log, beside what it tells a person


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    url: str
    broker_port: int
    http_port: int
    lines: list[str] = field(default_factory=list)
    opener: Any = None

    @property
    def hall_url(self) -> str:
        return f"{self.url}/demo/hall"

    @property
    def admin_password(self) -> str:
        line = next(line for line in self.lines if "admin panel" in line)
        return line.rsplit("password ", 1)[1].strip()

    @property
    def folder(self) -> Path:
        line = next(line for line in self.lines if "files in" in line)
        return Path(re.search(r"files in (.+)\)$", line).group(1))

    def get(self, path: str) -> bytes:
        with self.opener.open(self.url + path, timeout=5) as response:
            return response.read()

    def state(self) -> dict[str, Any]:
        return json.loads(self.get("/demo/hall.json"))

    def press(self, device: str, button: str) -> tuple[int, dict[str, Any]]:
        """Click a button of the virtual hall, as its page does: a form post with the CSRF token."""
        page = self.get("/demo/hall").decode()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"device": device, "button": button}).encode()
        request = urllib.request.Request(
            f"{self.url}/demo/press", data=form,
            headers={"Accept": "application/json", "X-CSRFToken": token}, method="POST")
        try:
            with self.opener.open(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def point(self, device: str) -> dict[str, Any]:
        return next(p for p in self.state()["points"] if p["id"] == device)

    def frame(self) -> Image.Image:
        return Image.open(io.BytesIO(self.get("/demo/display/display-1.png"))).convert("RGB")


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``: pid -> command name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid:
            found[int(entry.name)] = name
    return found


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return state[state.rindex(")") + 2] == "Z"


@contextmanager
def running_demo(*args: str) -> Iterator[RunningDemo]:
    """``nextup demo`` on free ports until it prints "Press Ctrl-C"; stopped (killed at worst) afterwards."""
    http_port, broker_port = free_port(), free_port()
    env = {**os.environ, "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    env.pop("NOTIFY_SOCKET", None)
    # Its own process group, so that a signal to the group is what Ctrl-C at a terminal does.
    process = subprocess.Popen(
        [sys.executable, "-m", "nextup.cli", "demo", "--http", f"127.0.0.1:{http_port}", "--port",
         str(broker_port), "--silent", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    demo = RunningDemo(process, f"http://127.0.0.1:{http_port}", broker_port, http_port,
                       opener=urllib.request.build_opener(
                           urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())))
    demo.log = []  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("nextup demo ended before it was ready:\n" + "\n".join(demo.log))
            demo.log.append(line)
            if not LOG_LINE.match(line):
                demo.lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        # Keep reading, so the demo never blocks on a full pipe.
        threading.Thread(target=lambda: demo.log.extend(iter(lines.get, None)), daemon=True).start()
        yield demo
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _banner(image: Image.Image) -> Image.Image:
    """The band of the display frame where the newest call stands."""
    w, h = image.size
    return image.crop((0, int(0.12 * h), w, int(0.42 * h)))


def _changed_share(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 40 else 0)
    return diff.histogram()[255] / (diff.width * diff.height)


def test_the_demo_runs_a_whole_hall_and_ctrl_c_leaves_nothing_running():
    with running_demo() as demo:
        hall_text = "\n".join(demo.lines)
        for path in ("/demo/hall", "/board", "/admin"):
            assert f"{demo.url}{path}" in hall_text
        folder = demo.folder
        assert folder.is_dir()
        brokers = [pid for pid, name in _children(demo.process.pid).items() if name == "mosquitto"]
        assert len(brokers) == 1 and _listening(demo.broker_port)

        state = demo.state()
        assert [b["name"] for b in state["kiosks"][0]["buttons"]] == ["cash", "loans", "accounts"]
        assert [p["name"] for p in state["points"]] == ["Window 1", "Window 2", "Window 3", "Window 4"]
        assert demo.point("point-1")["lcd"][0].startswith("Window 1")
        assert state["kiosks"][0]["tickets"] == []
        frame_before = demo.frame()
        frames_before = state["displays"][0]["frames"]

        # A click on a button the kiosk does not have is refused and prints nothing.
        status, answer = demo.press("kiosk-1", "bakery")
        assert status == 400 and "no button 'bakery'" in answer["error"]
        status, answer = demo.press("kiosk-9", "cash")
        assert status == 400 and "no device 'kiosk-9'" in answer["error"]

        assert demo.press("kiosk-1", "cash")[0] == 202
        tickets = wait_until(lambda: demo.state()["kiosks"][0]["tickets"], timeout=10,
                             what="a printed ticket")
        assert [t["number"] for t in tickets] == ["A-001"]
        slip = Image.open(io.BytesIO(demo.get(f"/demo/ticket/{tickets[0]['id']}.png")))
        assert slip.format == "PNG" and slip.width == 576 and slip.height > slip.width
        assert slip.convert("L").getextrema()[0] == 0  # ink on the paper
        board = json.loads(demo.get("/board.json"))
        assert {w["key"]: w["count"] for w in board["waiting"]}["cash"] == 1

        assert demo.press("point-1", "next")[0] == 202
        wait_until(lambda: demo.point("point-1")["lcd"][1].startswith("A-001"), timeout=10,
                   what="the LCD of window 1 to show the call")
        assert demo.point("point-1")["leds"] == {"active": "on", "calling": "blink", "error": "off"}
        wait_until(lambda: demo.state()["displays"][0]["frames"] > frames_before, timeout=10,
                   what="a new display frame")

        def call_shown() -> Image.Image | None:
            frame = demo.frame()
            return frame if _changed_share(_banner(frame_before), _banner(frame)) > 0.05 else None

        frame_after = wait_until(call_shown, timeout=5, what="the call on the display")
        # The newest call's banner is the display's highlight colour now.
        assert (255, 183, 3) in {c for _, c in _banner(frame_after).getcolors(1 << 20)}

        os.killpg(demo.process.pid, signal.SIGINT)  # Ctrl-C at the terminal
        assert demo.process.wait(20) == 0, "\n".join(demo.log[-30:])
        assert all(_gone(pid) for pid in brokers)
        assert not _listening(demo.broker_port) and not _listening(demo.http_port)
        assert not folder.exists()  # the temporary folder went with it
        assert _children(demo.process.pid) == {}


def test_the_demo_stops_on_sigterm_and_keeps_a_given_folder(tmp_path):
    with running_demo("--dir", str(tmp_path / "hall")) as demo:
        assert demo.folder == tmp_path / "hall"
        assert (tmp_path / "hall" / "nextup.sqlite3").exists()
        assert (tmp_path / "hall" / "display-1.png").exists()
        brokers = [pid for pid, name in _children(demo.process.pid).items() if name == "mosquitto"]
        demo.process.terminate()
        assert demo.process.wait(20) == 0, "\n".join(demo.log[-30:])
        assert all(_gone(pid) for pid in brokers) and not _listening(demo.broker_port)
        assert (tmp_path / "hall" / "nextup.sqlite3").exists()


def test_the_virtual_hall_exists_only_in_demo_mode(make_store, sqlite_url):
    from central.coordinator import Coordinator
    from central.web import create_app

    coordinator = Coordinator(make_store(sqlite_url))
    assert create_app(coordinator).test_client().get("/demo/hall").status_code == 404
    # In demo mode, but with no devices running, the page says so instead of failing.
    assert create_app(coordinator, config={"DEMO": True}).test_client().get("/demo/hall").status_code == 503


# --- the virtual hall in chromium -------------------------------------------------------


def test_a_click_in_the_virtual_hall_prints_a_ticket_and_calls_it(browser, shots):
    with running_demo() as demo:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(demo.hall_url)
        kiosk = page.locator('[data-device="kiosk-1"]')
        assert kiosk.locator("button").all_inner_texts() == ["A\nCash desk", "B\nLoans", "C\nAccounts"]
        assert kiosk.locator(".tickets figure").count() == 0

        kiosk.get_by_role("button", name="Loans").click()
        ticket = kiosk.locator(".tickets figure img")
        ticket.wait_for(timeout=10_000)
        assert ticket.get_attribute("alt") == "Printed ticket B-001"
        page.wait_for_function("img => img.complete && img.naturalWidth === 576", arg=ticket.element_handle())

        window3 = page.locator('[data-device="point-3"]')
        window3.get_by_role("button", name="Next").click()
        page.wait_for_function(
            "el => el.textContent.includes('B-001')", arg=window3.locator("[data-lcd]").element_handle(),
            timeout=10_000)
        assert window3.locator('[data-led="calling"]').get_attribute("data-state") == "blink"
        shots(page, "virtual-hall")

        # The admin password the demo printed signs in.
        page.goto(f"{demo.url}/admin/login")
        page.fill('input[name="name"]', "demo-admin")
        page.fill('input[name="password"]', demo.admin_password)
        page.get_by_role("button", name=re.compile("sign in", re.I)).click()
        page.wait_for_url(f"{demo.url}/admin/")
        page.close()
