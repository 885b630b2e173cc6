"""The report page in a real headless Chromium: it loads from a file with no network,
renders the diagram, plots and timeline, steps through the segments showing both ends'
state and window, takes a screenshot, and logs no console errors.

Chromium is driven over the DevTools protocol with a tiny WebSocket client below
(standard library only).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from synack.commands.main import main
from synack.scenarios.lab import LabRun
from synack.scenarios.labs import LABS
from synack.trace.report import render_report

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    msg = "chromium is not installed (apt-get install chromium; scripts/install-system-deps.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + " and CI=true: the browser test must run")
    pytest.skip(msg)


class DevTools:
    """Just enough WebSocket (RFC 6455) and CDP to drive one page."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "DevTools connection closed"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read_message(self) -> dict[str, Any]:
        parts = []
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            if b0 & 0x0F in (0x1, 0x0):
                parts.append(payload)
                if b0 & 0x80:
                    message: dict[str, Any] = json.loads(b"".join(parts))
                    return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self._send(json.dumps(msg))
        while True:
            reply = self._read_message()
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while time.monotonic() < end:
            ev = self._read_message()
            self.events.append(ev)
            if ev.get("method") == method:
                return ev
        raise AssertionError(f"no {method} within {timeout}s")

    def js(self, expr: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in res, res
        return res["result"].get("value")


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None, "chromium exited"
            assert time.monotonic() < end, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        dt = DevTools(int(port), path)
        target = dt.call("Target.createTarget", url="about:blank")["targetId"]
        dt.session = dt.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.call(f"{domain}.enable")
        yield dt
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def console_errors(dt: DevTools) -> list[Any]:
    errs = []
    for ev in dt.events:
        m, p = ev.get("method"), ev.get("params", {})
        error = (
            m == "Runtime.exceptionThrown"
            or (m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"))
            or (m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error")
        )
        if error:
            errs.append(p)
    return errs


def test_report_page_in_headless_chromium(browser: DevTools, tmp_path: Path) -> None:
    trace = tmp_path / "lab.jsonl"
    out = tmp_path / "report.html"
    lab = LABS["lost-fin"].run()
    trace.write_text("".join(json.dumps(r) + "\n" for r in lab.trace))
    assert main(["report", str(trace), "-o", str(out), "--title", "lost FIN"]) == 0
    html = out.read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', html), "the page must be self-contained"

    dt = browser
    dt.call("Page.navigate", url=out.as_uri())
    dt.wait_event("Page.loadEventFired")
    n = dt.js("JSON.parse(document.getElementById('steps-data').textContent).length")
    assert n == len([r for r in lab.trace if r.get("ev") == "seg" and r.get("dir") == "out"])
    assert dt.js("document.querySelectorAll('#diagram svg .seg').length") == n
    assert dt.js("document.getElementById('step-pos').textContent") == f"segment 1 / {n}"
    assert dt.js("document.querySelector('#diagram .seg.cur').id") == "seg-0"
    assert dt.js("document.getElementById('prev').disabled") is True
    head = dt.js("document.getElementById('step-head').textContent")
    assert "client -> server" in head and "[S] seq=0" in head
    ends = dt.js(
        "Array.from(document.querySelectorAll('#ends-body tr')).map("
        "r => Array.from(r.cells).map(c => c.textContent))"
    )
    assert ends[0][:3] == ["client 10.0.0.1", "SYN-SENT", "65535"]
    assert ends[1][1] == "LISTEN"
    # step forward to the lost FIN and back, with the buttons and the keyboard
    lost = next(
        i
        for i in range(n)
        if dt.js(f"JSON.parse(document.getElementById('steps-data').textContent)[{i}].lost")
    )
    for _ in range(lost):
        dt.js("document.getElementById('next').click()")
    assert dt.js("document.body.getAttribute('data-step')") == str(lost)
    assert "lost in the network" in dt.js("document.getElementById('step-lost').textContent")
    assert "F" in dt.js("document.getElementById('step-head').textContent").split("[")[1][:3]
    assert dt.js("document.querySelector('#diagram .seg.cur').classList.contains('lost')")
    assert dt.js("document.querySelector('#timeline div.cur').getAttribute('data-seg')") == str(
        dt.js(f"JSON.parse(document.getElementById('steps-data').textContent)[{lost}].seg")
    )
    state = dt.js("document.querySelector('#ends-body tr').cells[1].textContent")
    assert state == "FIN-WAIT-1"
    dt.call(
        "Input.dispatchKeyEvent",
        type="keyDown",
        key="ArrowLeft",
        code="ArrowLeft",
        windowsVirtualKeyCode=37,
    )
    assert dt.js("document.body.getAttribute('data-step')") == str(lost - 1)
    for _ in range(n + 3):
        dt.js("document.getElementById('next').click()")
    assert dt.js("document.getElementById('step-pos').textContent") == f"segment {n} / {n}"
    assert dt.js("document.getElementById('next').disabled") is True
    # plots: PNG data URIs that decoded, or the CSV fallback
    imgs = dt.js("Array.from(document.querySelectorAll('.plots img')).map(i => i.naturalWidth)")
    links = dt.js("document.querySelectorAll('.plots a[download]').length")
    assert (imgs and all(w > 100 for w in imgs)) or links == 3
    assert dt.js("document.querySelectorAll('#timeline div').length") > n
    shot = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    (tmp_path / "report.png").write_bytes(shot)
    assert console_errors(dt) == []
    urls = [
        ev["params"]["request"]["url"]
        for ev in dt.events
        if ev.get("method") == "Network.requestWillBeSent"
    ]
    assert all(u.startswith(("file:", "data:")) for u in urls), urls


def test_report_html_without_plots_has_csv_links(monkeypatch: pytest.MonkeyPatch) -> None:
    from synack.trace import report

    monkeypatch.setattr(report, "matplotlib_available", lambda: False)
    html = render_report(LABS["handshake"].run().trace, title="hs <test>")
    assert "<title>hs &lt;test&gt;</title>" in html
    assert html.count('download="') == 3 and "pip install" in html
    data = json.loads(re.search(r'id="steps-data">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert [d["seg"] for d in data] == [0, 1, 2]
    assert data[0]["ends"]["10.0.0.1"]["state"] == "SYN-SENT"


#: Two text boxes overlapping by less than this (pixels) do not count: glyph boxes
#: include the font's line gap.
OVERLAP_SLACK = 1.5

OVERLAPS_JS = """
(() => {
  const boxes = Array.from(document.querySelectorAll('svg text')).map(t => {
    const r = t.getBoundingClientRect();
    return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, text: t.textContent};
  }).filter(b => b.x1 > b.x0);
  const s = SLACK, out = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
    const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
    if (w > s && h > s) out.push([a.text, b.text]);
  }
  const svg = document.querySelector('svg').getBoundingClientRect();
  const outside = boxes.filter(b => b.x0 < svg.left - 1 || b.x1 > svg.right + 1)
                       .map(b => b.text);
  return {count: boxes.length, overlaps: out.slice(0, 5), outside: outside.slice(0, 5)};
})()
""".replace("SLACK", str(OVERLAP_SLACK))


def test_no_two_labels_overlap_in_any_lab_diagram(
    browser: DevTools, tmp_path: Path, lab_runs: dict[str, LabRun]
) -> None:
    """Every lab's sequence diagram as a person sees it: no label covers another, and
    none runs off the picture (measured by the browser, not estimated)."""
    from synack.trace.diagram import render_svg
    from synack.trace.model import analyze

    dt = browser
    problems = {}
    for run in lab_runs.values():
        lab = run.lab
        svg = render_svg(analyze(run.trace, run.roles), title=f"{lab.name}: {lab.title}")
        page = tmp_path / f"{lab.name}.html"
        page.write_text(f"<!doctype html><html><body style='margin:0'>{svg}</body></html>")
        dt.events.clear()  # wait for this page's load, not the previous one's
        dt.call("Page.navigate", url=page.as_uri())
        dt.wait_event("Page.loadEventFired")
        got = dt.js(OVERLAPS_JS)
        assert got["count"] > 5, lab.name
        if got["overlaps"] or got["outside"]:
            problems[lab.name] = got
    assert problems == {}


def test_report_labels_do_not_overlap(browser: DevTools, tmp_path: Path) -> None:
    lab = LABS["fast-retransmit"].run()
    out = tmp_path / "report.html"
    out.write_text(render_report(lab.trace, roles=lab.roles, title="fast retransmit"))
    browser.call("Page.navigate", url=out.as_uri())
    browser.wait_event("Page.loadEventFired")
    got = browser.js(OVERLAPS_JS)
    assert got["overlaps"] == [] and got["outside"] == [], got
