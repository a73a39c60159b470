"""The Device interface: where a runner runs.

A device stages files (the runner, artifacts, probe inputs) where its Python can read them
and runs the runner with a JSON request. The local host and adb devices implement it; the
plugin and the workload never need to know which one they hold.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any

RUNNER_SCRIPT = Path(__file__).resolve().parent.parent / "runner" / "aiot_runner.py"


class DeviceError(RuntimeError):
    """The device itself failed: unreachable, gone, or its runner crashed."""


class RunnerFailed(DeviceError):
    def __init__(self, device: str, stage: str, message: str, stderr: str = ""):
        detail = f"runner on device {device!r} failed at {stage}: {message}"
        if stderr.strip():
            detail += "\n--- runner stderr (last lines) ---\n" + _tail(stderr)
        super().__init__(detail)
        self.device = device
        self.stage = stage
        self.stderr = stderr


class FrameworkMissing(DeviceError):
    """The device cannot run this framework: the item is skipped, the session goes on."""


class Device(abc.ABC):
    #: Stable name used in test ids and results (a phone's model name, not its serial).
    alias: str
    #: How the transport names it (adb serial; "local" for the host).
    serial: str
    kind: str
    #: Pause before each workload when --aiot-cooldown is not given.
    default_cooldown_s: float = 0.0

    @abc.abstractmethod
    def facts(self) -> dict[str, Any]:
        """Model, cores, memory, OS and Python versions: recorded beside every result."""

    @abc.abstractmethod
    def cpu_count(self) -> int:
        """Cores the runner may use (the default thread count)."""

    @abc.abstractmethod
    def stage(self, local_path: Path, sha256: str | None = None) -> str:
        """Make ``local_path`` readable by the runner; return its path on the device."""

    @abc.abstractmethod
    def execute_runner(self, runner_path: str, request: str,
                       timeout_s: float) -> tuple[int, str, str]:
        """Run the runner with ``request`` on stdin; return (exit code, stdout, stderr)."""

    def close(self) -> None:  # noqa: B027  (most devices hold nothing)
        """Release what the session holds on the device (locks, pushed files)."""

    def run(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Run one measurement; return the runner's result or raise with its reasons."""
        runner_path = self.stage(RUNNER_SCRIPT)
        code, stdout, stderr = self.execute_runner(runner_path, json.dumps(request), timeout_s)
        result = _parse_result(stdout)
        if result is None:
            raise RunnerFailed(self.alias, "runner", f"exited with code {code} and no result "
                               "(crashed or killed: see its stderr)", stderr)
        if not result.get("ok"):
            if result.get("stage") == "import":
                raise FrameworkMissing(f"device {self.alias!r}: {result.get('error')}")
            raise RunnerFailed(self.alias, str(result.get("stage")), str(result.get("error")),
                               stderr)
        result["stderr_tail"] = _tail(stderr, 20)
        return result


def _parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "ok" in parsed:
            return parsed
    return None


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
