"""Headless Chromium for the HTML report's tests: Debian's ``chromium``, unpacked into a cache
folder by ``debian/fetch_chromium.sh`` without a system install (as adbd is), driven over the
DevTools protocol on a pipe (``--remote-debugging-pipe``: NUL-separated JSON on fds 3 and 4),
so the standard library is all it takes and console errors are caught reliably."""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from debian_packages import SCRIPTS, fetch_package

CACHE = Path(os.environ.get("AIOTBENCH_CHROMIUM_CACHE",
                            Path.home() / ".cache" / "pytest-aiotbench" / "chromium"))


def fetch_chromium() -> tuple[str, str]:
    """Unpack Chromium (once; later calls read the cache): its binary and library path.
    Raises PackageUnavailable with the reason."""
    values = fetch_package(SCRIPTS / "fetch_chromium.sh", CACHE, "chromium")
    return values["CHROMIUM_BIN"], values["CHROMIUM_LD_LIBRARY_PATH"]


@dataclasses.dataclass
class PageVisit:
    """What the browser saw: console errors and uncaught exceptions, the value of the
    expression evaluated once the page had loaded, and a full-page screenshot (PNG)."""

    console_errors: list[str]
    evaluated: Any
    screenshot: bytes


class Chromium:
    """One headless browser; ``visit`` opens a page in a fresh tab."""

    def __init__(self, binary: str, library_path: str, timeout_s: float = 60):
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="aiotbench-chromium-")
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()

        def onto_devtools_fds() -> None:  # in the child: fd 3 reads commands, fd 4 answers
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (commands_read, answers_write)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
             "--window-size=1400,1000", "about:blank"],
            env={**os.environ, "LD_LIBRARY_PATH": library_path}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(3, 4),
            preexec_fn=onto_devtools_fds)
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # -------------------------------------------------------------------- protocol
    def _send(self, method: str, params: dict[str, Any] | None = None,
              session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self._events.append(answer)

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError(f"chromium said nothing for {self.timeout_s} s")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (status {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _wait_for(self, method: str, session: str) -> None:
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    del self._events[index]
                    return
            self._events.append(self._receive())

    # ------------------------------------------------------------------------ use
    def visit(self, url: str, expression: str) -> PageVisit:
        """Open the page, wait for it to load, evaluate ``expression`` (a promise is awaited;
        the value must be JSON) and take a full-page screenshot."""
        self._events.clear()
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget",
                             {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self._send(f"{domain}.enable", session=session)
        self._send("Page.navigate", {"url": url}, session)
        self._wait_for("Page.loadEventFired", session)
        evaluated = self._send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True}, session)
        if "exceptionDetails" in evaluated:
            raise RuntimeError(f"the test's expression failed: {evaluated['exceptionDetails']}")
        size = self._send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = self._send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}}, session)
        errors = [_error_text(event) for event in self._events
                  if event.get("sessionId") == session and _is_error(event)]
        self._send("Target.closeTarget", {"targetId": target})
        return PageVisit(errors, evaluated["result"].get("value"), base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._answers)
        self._profile.cleanup()


def _is_error(event: dict[str, Any]) -> bool:
    method, params = event.get("method"), event.get("params", {})
    return (method == "Runtime.exceptionThrown"
            or (method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"))
            or (method == "Log.entryAdded" and params["entry"].get("level") == "error"))


def _error_text(event: dict[str, Any]) -> str:
    params = event["params"]
    if event["method"] == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return f"exception: {details.get('exception', {}).get('description') or details['text']}"
    if event["method"] == "Runtime.consoleAPICalled":
        return "console: " + " ".join(str(arg.get("value", arg.get("description")))
                                      for arg in params["args"])
    return f"log: {params['entry'].get('text')} ({params['entry'].get('url', '')})"
