"""The Device interface: where a runner runs.

A device stages files (the runner, artifacts, probe inputs) where its Python can read them
and runs the runner with a JSON request. The local host and adb devices implement it; the
plugin and the workload never need to know which one they hold.
"""

from __future__ import annotations

import abc
import posixpath
import re
import signal
from pathlib import Path

from pytest_aiotbench.devices.facts import DeployStats, DeviceFacts
from pytest_aiotbench.runner.program import RunnerProgram
from pytest_aiotbench.runner.protocol import (
    ProtocolError,
    RunFailure,
    RunRequest,
    RunResult,
    parse_result,
)


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
    #: The device's Python, for the Python runner.
    python: str
    #: What this session pushed to it (None: a device that pushes nothing, the local host).
    deploy_stats: DeployStats | None = None

    @abc.abstractmethod
    def facts(self) -> DeviceFacts:
        """Model, cores, memory, OS and Python versions: recorded beside every result."""

    @abc.abstractmethod
    def cpu_count(self) -> int:
        """Cores the runner may use (the default thread count)."""

    @abc.abstractmethod
    def stage(self, local_path: Path, sha256: str | None = None,
              executable: bool = False) -> str:
        """Make ``local_path`` readable (and executable) by the runner; return its path on
        the device."""

    @abc.abstractmethod
    def execute_runner(self, argv: list[str], env: dict[str, str], request: str,
                       timeout_s: float) -> tuple[int, str, str]:
        """Run ``argv`` with ``env`` added and ``request`` on stdin; return (exit code,
        stdout, stderr). A negative code is the signal that killed it."""

    def close(self) -> None:  # noqa: B027  (most devices hold nothing)
        """Release what the session holds on the device (locks, pushed files)."""

    def run(self, program: RunnerProgram, request: RunRequest, timeout_s: float) -> RunResult:
        """Stage the runner, run one measurement; return its result or raise with reasons."""
        executable = self.stage(program.executable, executable=program.kind == "native")
        if program.kind == "python":
            argv, env = [self.python, executable], {}
        else:
            # The framework's libraries were pushed beside the runner, each in its own
            # content-addressed folder: the loader looks in all of them.
            folders = dict.fromkeys(posixpath.dirname(self.stage(library))
                                    for library in program.libraries)
            argv, env = [executable], ({"LD_LIBRARY_PATH": ":".join(folders)}
                                       if folders else {})
        code, stdout, stderr = self.execute_runner(argv, env, request.to_json(), timeout_s)
        try:
            parsed = parse_result(stdout)
        except ProtocolError as exc:
            raise RunnerFailed(self.alias, "protocol", str(exc), stderr) from None
        if parsed is None:
            raise RunnerFailed(self.alias, "start" if _missing_library(stderr) else "runner",
                               _why_no_result(program, code, stderr), stderr)
        if isinstance(parsed, RunFailure):
            if parsed.stage == "import":
                raise FrameworkMissing(f"device {self.alias!r}: {parsed.error}")
            raise RunnerFailed(self.alias, parsed.stage, parsed.error, stderr)
        return parsed


def _missing_library(stderr: str) -> str | None:
    """The shared library the loader could not find (glibc's or bionic's wording)."""
    found = (re.search(r"error while loading shared libraries: ([^:\s]+)", stderr)
             or re.search(r'library "([^"]+)" not found', stderr))
    return found.group(1) if found else None


def _why_no_result(program: RunnerProgram, code: int, stderr: str) -> str:
    library = _missing_library(stderr)
    if library:
        return (f"the {program.kind} runner cannot start: shared library {library} is missing "
                "on the device (not among the pushed libraries, nor the system's); rebuild the "
                "runner's bundle with aiotbench-build-runner")
    # A shell reports death by signal N as exit code 128 + N; a local process as -N.
    number = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else None
    if number is not None:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return (f"the {program.kind} runner crashed: killed by {name} (signal {number}, exit "
                f"code {code}) before it wrote a result")
    return f"the {program.kind} runner exited with code {code} and no result"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
