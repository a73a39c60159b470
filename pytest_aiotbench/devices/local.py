"""The local host as a device: the runner runs in a separate process, as on a device, so
the pytest process's threads, memory and imports never touch the timing."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from pytest_aiotbench.devices.base import Device, RunnerFailed
from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.runner.protocol import CompetingLoad


class LocalDevice(Device):
    kind = "local"

    def __init__(self, python: str | None = None, alias: str = "local"):
        self.alias = alias
        self.serial = "local"
        self.python = python or sys.executable

    def cpu_count(self) -> int:
        return len(os.sched_getaffinity(0))

    def stage(self, local_path: Path, sha256: str | None = None,
              executable: bool = False) -> str:
        return str(local_path)

    def execute_runner(self, argv: list[str], env: dict[str, str], request: str,
                       timeout_s: float) -> tuple[int, str, str]:
        try:
            done = subprocess.run(argv, input=request, text=True, env={**os.environ, **env},
                                  capture_output=True, timeout=timeout_s, check=False)
        except OSError as exc:
            # As a shell reports it (127: not found, 126: not executable), so that Device.run
            # explains it as it does for a device.
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            return code, "", f"cannot start {argv[0]}: {exc.strerror or exc}\n"
        except subprocess.TimeoutExpired as exc:
            raise RunnerFailed(self.alias, "timeout", f"no result within {timeout_s:.0f} s "
                               "(raise --aiot-timeout for slow models)",
                               _text(exc.stderr)) from exc
        return done.returncode, done.stdout, done.stderr

    def existing(self, paths: list[str]) -> set[str] | None:
        return {path for path in paths if os.path.exists(path)}

    def load_window(self, window_s: float) -> CompetingLoad | None:
        """The runner inherits this process's affinity: those cores, read here directly."""
        stat = Path("/proc/stat")
        try:
            before = stat.read_text()
            time.sleep(window_s)
            after = stat.read_text()
        except OSError:
            return None
        return CompetingLoad.between(before, after, sorted(os.sched_getaffinity(0)))

    def facts(self) -> DeviceFacts:
        return DeviceFacts(
            kind=self.kind, alias=self.alias, model=_cpu_model(),
            hostname=socket.gethostname(), machine=platform.machine(), cores=os.cpu_count(),
            cores_usable=self.cpu_count(), core_max_khz=_core_max_khz(),
            memory_bytes=_memory_bytes(), os=platform.platform(), libc=_libc(),
            python=platform.python_version(), python_executable=self.python)


def _libc() -> str | None:
    family, version = platform.libc_ver()
    return f"{family} {version}".strip() or None


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _core_max_khz() -> list[int]:
    freqs = []
    for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        try:
            freqs.append(int((cpu / "cpufreq" / "cpuinfo_max_freq").read_text()))
        except (OSError, ValueError):
            continue
    return freqs


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
