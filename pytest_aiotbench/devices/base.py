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
import struct
from pathlib import Path

from pytest_aiotbench.devices.facts import DeployStats, DeviceFacts
from pytest_aiotbench.runner.native import elf
from pytest_aiotbench.runner.native.build import BUILD_COMMAND
from pytest_aiotbench.runner.native.targets import Target
from pytest_aiotbench.runner.program import RunnerProgram
from pytest_aiotbench.runner.protocol import (
    CompetingLoad,
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

    def existing(self, paths: list[str]) -> set[str] | None:
        """Which of ``paths`` exist on the device (None: this device cannot tell)."""
        return None

    def run_notes(self) -> list[str]:
        """What a result measured here should say about how it ran (e.g. unpinned)."""
        return []

    def load_window(self, window_s: float) -> CompetingLoad | None:
        """The time of the cores a runner is timed on over the next ``window_s`` seconds, no
        runner running: what other processes take of them now (None: it cannot tell)."""
        return None

    def check_program(self, program: RunnerProgram) -> None:
        """Raise RunnerFailed (stage 'start') where the device cannot execute the native
        runner's binary at all (another architecture or OS): said before anything is pushed."""
        if program.kind != "native":
            return
        problem = _target_problem(program, _elf_header(program), self.facts())
        if problem:
            raise RunnerFailed(self.alias, "start", problem)

    def run(self, program: RunnerProgram, request: RunRequest, timeout_s: float) -> RunResult:
        """Stage the runner, run one measurement; return its result or raise with reasons."""
        self.check_program(program)
        executable = self.stage(program.executable, executable=program.kind == "native")
        if program.kind == "python":
            argv, env = [self.python, executable], {}
        else:
            argv, env = self._native_command(program, executable)
        code, stdout, stderr = self.execute_runner(argv, env, request.to_json(), timeout_s)
        try:
            parsed = parse_result(stdout)
        except ProtocolError as exc:
            raise RunnerFailed(self.alias, "protocol", str(exc), stderr) from None
        if parsed is None:
            if (program.loader is not None and code in (126, 127, 255) and stderr.strip()
                    and not _loader_problem(stderr)):
                raise RunnerFailed(self.alias, "start", _loader_refused(program, argv[0], code,
                                                                        stderr))
            not_executed = _exec_failure(argv[0], code, stderr)
            if not_executed:
                # The shell (or `timeout`) could not start the program: nothing of the runner
                # ran, so its exit code means nothing; say why the device refused it.
                raise RunnerFailed(self.alias, "start",
                                   self._why_not_executed(program, not_executed),
                                   "" if stderr.strip() == not_executed else stderr)
            raise RunnerFailed(self.alias, "start" if _loader_problem(stderr) else "runner",
                               _why_no_result(program, code, stderr), stderr)
        if isinstance(parsed, RunFailure):
            if parsed.stage == "import":
                raise FrameworkMissing(f"device {self.alias!r}: {parsed.error}")
            raise RunnerFailed(self.alias, parsed.stage, parsed.error, stderr)
        return parsed

    def _native_command(self, program: RunnerProgram,
                        executable: str) -> tuple[list[str], dict[str, str]]:
        """The native runner's command line: started by the kernel with the device's loader,
        or (the loader route) by the bundled glibc's loader, told where the libraries are."""
        # The libraries were pushed each into its own content-addressed folder (the same file
        # is pushed once for every framework): the loader looks in all of them.
        folders = ":".join(dict.fromkeys(posixpath.dirname(self.stage(library))
                                         for library in program.libraries))
        if program.loader is not None:
            loader = self.stage(program.loader, executable=True)
            return [loader, "--library-path", folders, executable], {}
        return [executable], ({"LD_LIBRARY_PATH": folders} if folders else {})

    def _why_not_executed(self, program: RunnerProgram, line: str) -> str:
        if program.kind == "python":
            return (f"the device's Python {self.python!r} cannot be executed ({line}); name one "
                    f"that runs there with --aiot-{self.kind}-python")
        header = _elf_header(program)
        facts = self.facts()
        problem = _target_problem(program, header, facts)
        if problem:  # the check before the push could not tell (facts or ELF unknown then)
            return problem
        framework = f" {program.native.framework}" if program.native else ""
        built = f"the native{framework} runner ({_built_for(program, header)})"
        loader = header.interpreter if header else None
        found = self.existing([loader, *LOADERS]) if loader else None
        if header and loader and found is not None and loader not in found:
            others = [f"{path} ({LOADERS[path]})" for path in LOADERS if path in found]
            userland = (f"it has {', '.join(others)}" if others else
                        "a 32-bit userland on a 64-bit kernel, or a musl one?")
            libc = ("bionic" if loader.startswith("/system/") else
                    "musl" if "musl" in loader else "glibc")
            return (f"{built} cannot be executed: the device has no {loader}, the "
                    f"dynamic loader it needs, although its kernel says {facts.machine} "
                    f"(uname -m): its userland is of another kind ({userland}). Use a runner "
                    "built for that userland, or a system image whose userland is "
                    f"{header.machine} with {libc}")
        if "permission denied" in line.lower():
            return (f"{built} cannot be executed: permission denied ({line}); the work folder "
                    "may be on a filesystem mounted noexec: use a folder that allows "
                    "executables (a phone's /data/local/tmp)")
        return (f"{built} cannot be executed by the device ({_device_architecture(facts)}): "
                f"{line}")


#: The dynamic loaders that tell a device's userland apart where its kernel's machine does not
#: (a 32-bit userland on a 64-bit kernel, musl instead of glibc, Android's bionic).
LOADERS = {
    "/lib/ld-linux-aarch64.so.1": "aarch64, glibc",
    "/lib64/ld-linux-x86-64.so.2": "x86_64, glibc",
    "/lib/ld-linux-armhf.so.3": "32-bit arm hard-float, glibc",
    "/lib/ld-linux.so.3": "32-bit arm soft-float, glibc",
    "/lib/ld-linux.so.2": "32-bit x86, glibc",
    "/lib/ld-linux-riscv64-lp64d.so.1": "riscv64, glibc",
    "/lib/ld-musl-aarch64.so.1": "aarch64, musl",
    "/lib/ld-musl-armhf.so.1": "32-bit arm, musl",
    "/lib/ld-musl-x86_64.so.1": "x86_64, musl",
    "/system/bin/linker64": "Android, 64-bit",
    "/system/bin/linker": "Android, 32-bit",
}


def _elf_header(program: RunnerProgram) -> elf.Header | None:
    try:
        return elf.header(program.executable)
    except (OSError, elf.NotElf, struct.error):
        return None


def _built_for(program: RunnerProgram, header: elf.Header | None) -> str:
    described = [f"built for {program.native.target}"] if program.native else []
    if header:
        described.append(header.describe())
    return ", ".join(described) or str(program.executable)


def _device_architecture(facts: DeviceFacts) -> str:
    if facts.abi and facts.machine and facts.abi != facts.machine:
        return f"ABI {facts.abi}, uname -m {facts.machine}"
    return f"uname -m {facts.machine or facts.abi or 'unknown'}"


def _target_problem(program: RunnerProgram, header: elf.Header | None,
                    facts: DeviceFacts) -> str | None:
    """Why the device cannot execute the native runner's binary, judged from the binary's ELF
    header (else the target it claims) and the device's facts; None: it may."""
    target_os, _, target_abi = (program.native.target.partition("-") if program.native
                                else ("", "", ""))
    binary = header.machine if header else elf.architecture(target_abi)
    # The userland's ABI (Android's ro.product.cpu.abi) decides over the kernel's machine.
    device = elf.architecture(facts.abi) or elf.architecture(facts.machine)
    wanted = (Target.host() if facts.kind == "local" else Target.of_device(facts)).name
    framework = f" {program.native.framework}" if program.native else ""
    built = f"the native{framework} runner is {_built_for(program, header)}"
    how = (f"`{BUILD_COMMAND} --framework {program.native.framework} --target {wanted}`"
           if program.native and wanted.startswith("linux-") else f"`{BUILD_COMMAND} --help`")
    instead = (f"Use a runner built for {wanted} ({how}), or the Python runner "
               "(--aiot-runner=python) where the device has Python")
    if binary and device and binary != device and (device, binary) not in elf.COMPATIBLE:
        return (f"{built}, but the device is {device} ({_device_architecture(facts)}): it "
                f"cannot execute that binary. {instead}")
    if target_os == "android" and not facts.is_android:
        return (f"{built}, but the device runs {facts.os or 'Linux'}, not Android: an "
                f"Android (bionic) binary cannot run there. {instead}")
    if target_os == "linux" and facts.is_android:
        return (f"{built}, but the device runs {facts.os}: a Linux (glibc) binary cannot run "
                f"there. {instead}")
    return None


#: What a shell or `timeout` says when it cannot execute a file at all, with 126 or 127: not
#: found (also: its dynamic loader is absent), not an executable of this machine, no right.
_NOT_EXECUTED = re.compile(r"exec format error|cannot execute|not executable|not found|"
                           r"no such file or directory|permission denied|"
                           r"failed to run command|can't execute|cannot start", re.IGNORECASE)
#: Where the kernel refuses a binary (ENOEXEC), execvp hands it to sh as a script: then the
#: shell's complaint comes with any exit code (2 from dash and busybox).
_READ_AS_SCRIPT = re.compile(r"exec format error|cannot execute|not executable|syntax error",
                             re.IGNORECASE)


def _loader_refused(program: RunnerProgram, loader: str, code: int, stderr: str) -> str:
    native = program.native
    what = f"the native {native.framework} runner ({native.libc})" if native else "the runner"
    answer = " ".join(stderr.strip().splitlines()[-3:])[:400]
    return (f"the device cannot start the bundled loader {loader} of {what}: exit code "
            f"{code}: {answer}. The loader route needs a work folder that allows executables "
            "(--aiot-adb-workdir) and a kernel of the loader's CPU")


#: qemu-user's words where the loader an ELF names is missing (exit 255): on a real kernel the
#: shell says "not found" with 127.
_QEMU_NO_LOADER = re.compile(r"Could not open '([^']+)'")


def _exec_failure(executable: str, code: int, stderr: str) -> str | None:
    """The line in which the shell (or `timeout`) says it could not execute ``executable``
    (named as it was given: the shell repeats that); None where the program ran (its own
    messages do not name its path so, nor exit 126/127) or where the loader ran and could not
    link it (a missing library: said as such)."""
    if code == 0 or _loader_problem(stderr):
        return None
    for line in stderr.splitlines():
        if code == 255 and _QEMU_NO_LOADER.search(line):
            return line.strip()[:300]
    for line in stderr.splitlines():
        if executable not in line:
            continue
        if (code in (126, 127) and _NOT_EXECUTED.search(line)) or _READ_AS_SCRIPT.search(line):
            return line.strip()[:300]
    return None


def _loader_problem(stderr: str) -> str | None:
    """The dynamic loader ran but could not link the runner: a missing library, or a C library
    older than the one the runner was built against."""
    return _missing_library(stderr) or _missing_symbol_version(stderr)


def _missing_symbol_version(stderr: str) -> str | None:
    found = re.search(r"version [`'‘]?((?:GLIBC|GLIBCXX|CXXABI)_[\d.]+)[`'’]? not found",
                      stderr)
    return found.group(1) if found else None


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
    version = _missing_symbol_version(stderr)
    if version:
        return (f"the {program.kind} runner cannot start: the device's C/C++ libraries lack "
                f"{version}, which the runner was built against (the device's system is "
                "older than the build's); build the runner against an older toolchain or "
                "sysroot")
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
