"""Drive a real headless Chromium over the DevTools protocol (a WebSocket, via the
small `websocket-client` package): no Selenium, no driver binary, no Playwright."""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("CHRONOSX_CHROMIUM", "/usr/bin/chromium")
# Flags that work on these machines (SERVICES.md): headless as root, no GPU, nothing phoning home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def chromium_missing_reason() -> str | None:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (Debian package: chromium)"
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "the websocket-client package is not installed (requirements.txt)"
    return None


class BrowserError(AssertionError):
    pass


class Chromium:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, profile_dir: Path, *, width=1400, height=1000, timeout=20.0):
        self.profile_dir, self.width, self.height, self.timeout = Path(profile_dir), width, height, timeout
        self.exceptions: list[str] = []
        self._next_id = 0

    def __enter__(self):
        import websocket

        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.profile_dir.parent / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile_dir}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            port = self._devtools_port()
            page = self._wait(lambda: next((t for t in self._targets(port) if t["type"] == "page"), None), "a page target")
            # suppress_origin: Chromium refuses DevTools WebSockets that send an Origin it was not told to allow.
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True)
            self.send("Page.enable")
            self.send("Runtime.enable")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                # No reply is awaited: the browser may be gone before it answers.
                ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            except Exception:
                pass
            ws.close()
        for stop in (None, self.proc.terminate, self.proc.kill):
            if stop:
                stop()
            try:
                self.proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    # --- plumbing ------------------------------------------------------------------

    def _wait(self, probe, what, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"Chromium exited ({self.proc.returncode}) while waiting for {what}; see {self._log.name}")
            value = probe()
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(f"timed out after {timeout or self.timeout} s waiting for {what}")

    def _devtools_port(self) -> int:
        # With port 0 Chromium picks a free port and writes it into the profile directory.
        active = self.profile_dir / "DevToolsActivePort"
        text = self._wait(lambda: active.is_file() and active.read_text(), "DevToolsActivePort")
        return int(text.splitlines()[0])

    @staticmethod
    def _targets(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                return json.load(response)
        except OSError:
            return []

    def send(self, method, **params):
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    # --- what tests use ------------------------------------------------------------

    def navigate(self, url):
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression, what=None, timeout=None):
        """Poll a JavaScript expression until it is truthy; return its value."""

        def probe():
            try:
                return self.evaluate(expression)
            except BrowserError:
                return None  # e.g. the page is navigating and its context is gone: poll again

        return self._wait(probe, what or expression, timeout)

    def log_in(self, username: str, password: str, *, then: str):
        """Fill in and send the admin login form this page shows; wait for the page `then`."""
        self.evaluate(
            f"""document.getElementById('id_username').value = {json.dumps(username)};
                document.getElementById('id_password').value = {json.dumps(password)};
                document.getElementById('login-form').submit();"""
        )
        self.wait_for(f"location.pathname === {json.dumps(then)} && document.readyState === 'complete'",
                      f"{then} after logging in as {username}")

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the whole page, not just the window."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=max(self.height, int(size["height"]) + 1),
            deviceScaleFactor=1,
            mobile=False,
        )
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
        self.send("Emulation.clearDeviceMetricsOverride")
        Path(path).write_bytes(data)
        return data
