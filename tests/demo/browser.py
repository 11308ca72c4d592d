"""Open a page in headless Chromium and report what it loaded, over the
Chrome DevTools Protocol (websockets, already pinned for web3).

    page = load("reports/.../report.html")
    page.images     [{"alt", "src", "complete", "width", "height"}] per <img>
    page.requests   every URL the page asked for, the page itself included
    page.external   the ones that left the machine (not data:, not the file)

Chromium is Debian's package (/usr/bin/chromium). `find_chromium()` returns
its path; if it is missing and this runs as root with apt-get, it installs
the package (non-interactive, a few seconds where the package lists are
there); otherwise it returns None with the reason, and the caller skips.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
INSTALL_TIMEOUT = 120  # seconds for apt-get update + install, at most


def find_chromium():
    """(path, None) or (None, why it cannot be had)."""
    for c in (CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and os.access(c, os.X_OK):
            return c, None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium is not installed and cannot be installed here (needs root and apt-get): " \
                     "apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.time() + INSTALL_TIMEOUT
    try:
        for cmd in (["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                    ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]):
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=max(1, deadline - time.time()))
            if cmd[1] == "install" and r.returncode == 0 and os.access(CHROMIUM, os.X_OK):
                return CHROMIUM, None
    except (subprocess.TimeoutExpired, OSError) as e:
        return None, f"installing chromium with apt-get failed: {e}"
    return None, f"installing chromium with apt-get failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}"


@dataclass
class Page:
    url: str
    images: list
    requests: list
    failed: list = field(default_factory=list)
    links: list = field(default_factory=list)  # every src/href attribute in the loaded DOM

    @property
    def external(self):
        return [u for u in self.requests if not u.startswith("data:") and u != self.url]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cdp:
    def __init__(self, ws_url):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=10)
        self.next_id = 0
        self.events = []

    def call(self, method, timeout=20, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.time())))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method, timeout=20):
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.time())))
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    def close(self):
        self.ws.close()


def load(path, chromium=CHROMIUM, timeout=30):
    """Load the file in a fresh headless Chromium profile; a Page."""
    url = Path(path).resolve().as_uri()
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="backstop-chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "--remote-allow-origins=*", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cdp = None
    try:
        deadline = time.time() + timeout
        target = None
        while target is None:
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                target = pages[0] if pages else None
            except OSError:
                pass
            if target is None:
                if time.time() > deadline:
                    raise RuntimeError("chromium's DevTools endpoint did not come up")
                time.sleep(0.1)
        cdp = _Cdp(target["webSocketDebuggerUrl"])
        cdp.call("Network.enable")
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=url)
        cdp.wait_for("Page.loadEventFired", timeout=timeout)
        got = cdp.call("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
            images: [...document.images].map(i => ({alt: i.alt, src: i.getAttribute('src').slice(0, 40),
                                                     complete: i.complete, width: i.naturalWidth,
                                                     height: i.naturalHeight})),
            links: [...document.querySelectorAll('[src], [href]')].map(
                e => (e.getAttribute('src') || e.getAttribute('href')).slice(0, 40))})""")
        dom = json.loads(got["result"]["value"])
        requests, failed = [], []
        for e in cdp.events:
            if e.get("method") == "Network.requestWillBeSent":
                requests.append(e["params"]["request"]["url"])
            elif e.get("method") == "Network.loadingFailed":
                failed.append(e["params"])
        return Page(url, dom["images"], requests, failed, dom["links"])
    finally:
        if cdp:
            try:
                cdp.close()
            except Exception:  # noqa: BLE001 - the browser is going anyway
                pass
        try:
            os.killpg(proc.pid, 15)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
            proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)
