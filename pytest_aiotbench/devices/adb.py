"""Devices reached over adb, through adbutils and a real adb server.

This is the Linux-board path of DESIGN.md: the device has Python and a framework; the runner
and the artifact are pushed into a work folder there and the runner runs with
``shell2(..., v2=True)`` (exit code and stderr kept apart). Every path that reaches the
device's shell is quoted: names with spaces or quotes are safe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shlex
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from pytest_aiotbench.artifacts.cache import sha256_file
from pytest_aiotbench.devices.base import LOADERS, Device, DeviceError, RunnerFailed
from pytest_aiotbench.devices.facts import DeployStats, DeviceFacts
from pytest_aiotbench.runner.program import RunnerProgram
from pytest_aiotbench.runner.protocol import CompetingLoad


@dataclasses.dataclass(frozen=True)
class AdbOptions:
    """How adb devices are reached and used; the defaults of the --aiot-adb-* options."""

    #: The adb server to ask (started by adbutils if none runs there).
    server: str = "127.0.0.1:5037"
    #: The work folder on the device: the runner, artifacts and inputs are pushed there.
    workdir: str = "/data/local/tmp/aiotbench"
    #: The device's Python, for the Python runner.
    python: str = "python3"
    #: Leave what was pushed on the device (a later session pushes nothing already there).
    keep_deployed: bool = False
    #: Pin the runner to the fastest cores where cores differ in max frequency.
    pin_big_cores: bool = True

# One shell call gathers the facts: cheap on a phone, and nothing is parsed from `adb` text.
FACTS_SCRIPT = r"""
for key in ro.product.model ro.product.manufacturer ro.product.board ro.board.platform \
           ro.soc.model ro.hardware ro.product.cpu.abi ro.build.version.release; do
  printf 'prop %s=%s\n' "$key" "$(getprop "$key" 2>/dev/null)"
done
printf 'nproc=%s\n' "$(nproc 2>/dev/null)"
for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do
  [ -r "$f" ] && printf 'maxfreq %s=%s\n' "$f" "$(cat "$f")"
done
printf 'meminfo=%s\n' "$(grep MemTotal /proc/meminfo 2>/dev/null)"
printf 'kernel=%s\n' "$(uname -r 2>/dev/null)"
printf 'machine=%s\n' "$(uname -m 2>/dev/null)"
[ -r /etc/os-release ] && printf 'osrelease=%s\n' "$(. /etc/os-release; echo "$PRETTY_NAME")"
command -v taskset >/dev/null 2>&1 && echo taskset=yes
# The C library: each glibc or musl loader present, asked for its release (glibc's answers
# --version; musl's says "Version x.y.z" when started bare).
for loader in @LOADERS@; do
  [ -e "$loader" ] || continue
  case $loader in
    *musl*) printf 'libc %s=%s\n' "$loader" "$("$loader" 2>&1 | grep '^Version' | head -n 1)" ;;
    *) printf 'libc %s=%s\n' "$loader" "$("$loader" --version 2>/dev/null | head -n 1)" ;;
  esac
done
""".replace("@LOADERS@", " ".join(path for path, what in LOADERS.items()
                                 if what.endswith(("glibc", "musl"))))

# The Python runner's needs: numpy, and the packages each framework names.
VERSIONS_SCRIPT = """
import importlib.metadata, json, platform, sys
found = {"python": platform.python_version()}
for dist in sys.argv[1:]:
    try:
        found[dist] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        found[dist] = None
print(json.dumps(found))
"""


def _device_packages() -> list[str]:
    from pytest_aiotbench import frameworks

    packages = ["numpy", "pillow"]
    for name in frameworks.names():
        packages += frameworks.get(name).device_packages
    return packages


class NoSpace(DeviceError):
    """A push the device has no room for."""


class AdbUnavailable(DeviceError):
    """The adb server cannot be reached or started."""


def _adbutils() -> Any:
    import adbutils

    return adbutils


def _client(server: str) -> Any:
    adbutils = _adbutils()
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        raise AdbUnavailable(f"--aiot-adb-server={server!r}: use HOST:PORT")
    return adbutils.AdbClient(host=host, port=int(port), socket_timeout=30)


def list_adb_devices(server: str = AdbOptions.server) -> tuple[list[tuple[str, str]], str]:
    """All devices the server knows, as (serial, state), and the server's address."""
    client = _client(server)
    address = f"{client.host}:{client.port}"
    try:
        return [(info.serial, info.state) for info in client.list()], address
    except Exception as exc:  # refused, reset, a server of another version
        raise AdbUnavailable(
            f"cannot reach the adb server at {address} ({type(exc).__name__}: {exc}); "
            "start it with `adb start-server`, or name another with --aiot-adb-server="
            "HOST:PORT") from exc


#: A device on the network, as `adb connect` names it (a board's adbd on TCP, a phone's
#: wireless debugging): the plugin connects it when it is named and not yet attached.
NETWORK_SERIAL = re.compile(r"[A-Za-z0-9.-]+:\d{1,5}")


def connect_network_devices(addresses: list[str], server: str = AdbOptions.server,
                            wait_s: float = 15) -> dict[str, str]:
    """``adb connect`` each HOST:PORT not attached yet and wait for it to be ready; return
    what adb said for those that did not come (address -> answer)."""
    client = _client(server)
    states = dict(list_adb_devices(server)[0])
    failed: dict[str, str] = {}
    for address in addresses:
        if states.get(address) == "device":
            continue
        try:
            answer = str(client.connect(address, timeout=10)).strip()
        except Exception as exc:  # refused, timed out
            failed[address] = f"adb connect {address}: {type(exc).__name__}: {exc}"
            continue
        if not answer.startswith(("connected to", "already connected")):
            failed[address] = f"adb connect {address}: {answer}"
            continue
        deadline = time.monotonic() + wait_s
        while dict(list_adb_devices(server)[0]).get(address) != "device":
            if time.monotonic() > deadline:
                failed[address] = (f"adb connect {address}: connected, but not ready within "
                                   f"{wait_s:.0f} s (unauthorized? accept the prompt)")
                break
            time.sleep(0.2)
    return failed


class AdbDevice(Device):
    kind = "adb"
    default_cooldown_s = 5.0  # phones heat up: let the SoC cool between workloads

    def __init__(self, serial: str, options: AdbOptions = AdbOptions()):
        self.serial = serial
        self.options = options
        self.workdir = options.workdir.rstrip("/") or "/"
        self.python = options.python
        self.device = _client(options.server).device(serial)
        self._lost: str | None = None
        self._facts: DeviceFacts | None = None
        self._has_taskset = True  # until the facts say otherwise
        #: The work folder's mount point and options, once asked.
        self._workdir_mount: tuple[str, str] | None = None
        self._staged: dict[str, str] = {}  # local path + sha -> device path
        self.pushed: list[str] = []
        self.deploy_stats = DeployStats()
        self._lock = _HostLock(serial)
        self.alias = self._ask_model()

    # ------------------------------------------------------------------ transport
    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Every adb call goes through here: a vanished device becomes one clear error."""
        if self._lost:
            raise DeviceError(f"device {self._name()} was lost earlier in this session "
                              f"({self._lost}); its remaining items cannot run")
        try:
            return function(*args, **kwargs)
        except DeviceError:
            raise
        except Exception as exc:  # AdbError, EOFError, ConnectionError, socket timeouts
            reason = f"{what}: {type(exc).__name__}: {exc}"
            if _is_disconnect(exc):
                self._lost = reason
                raise DeviceError(f"device {self._name()} disappeared during {reason}") from exc
            raise DeviceError(f"device {self._name()}: {reason}") from exc

    def _name(self) -> str:
        alias = getattr(self, "alias", None)
        return f"{alias!r} ({self.serial})" if alias else repr(self.serial)

    def shell(self, command: str, timeout: float = 60) -> Any:
        return self._call(f"shell {command[:60]!r}", self.device.shell2, command,
                          timeout=timeout, v2=True)

    def _ask_model(self) -> str:
        result = self.shell("getprop ro.product.model")
        model = result.stdout.strip() if result.returncode == 0 else ""
        return _alias_safe(model) or _alias_safe(self.serial)

    # ------------------------------------------------------------------ Device API
    def facts(self) -> DeviceFacts:
        if self._facts is None:
            # The session's lock on the device is taken at its first use, before any timing
            # lock (stages.timing_lock): taken inside one, two sessions sharing this device
            # could each hold what the other waits for.
            self._lock.acquire()
            self._facts = self._gather_facts()
        return self._facts

    def _gather_facts(self) -> DeviceFacts:
        out = self.shell(FACTS_SCRIPT).stdout
        props: dict[str, str] = {}
        max_khz: list[int] = []
        values: dict[str, str] = {}
        loaders: dict[str, str] = {}
        for line in out.splitlines():
            if line.startswith("prop "):
                key, _, value = line[5:].partition("=")
                props[key] = value.strip()
            elif line.startswith("libc "):
                path, _, answer = line[5:].partition("=")
                loaders[path] = answer.strip()
            elif line.startswith("maxfreq "):
                with contextlib.suppress(ValueError):
                    max_khz.append(int(line.rpartition("=")[2]))
            else:
                key, _, value = line.partition("=")
                values[key] = value.strip()
        memory = re.search(r"(\d+)", values.get("meminfo", ""))
        versions = self._python_versions()
        android = bool(props.get("ro.build.version.release"))
        self._has_taskset = values.get("taskset") == "yes"
        return DeviceFacts(
            kind=self.kind, alias=self.alias, serial=self.serial,
            model=props.get("ro.product.model") or self.alias,
            manufacturer=props.get("ro.product.manufacturer"),
            soc=props.get("ro.soc.model") or props.get("ro.board.platform")
            or props.get("ro.hardware") or props.get("ro.product.board") or None,
            abi=props.get("ro.product.cpu.abi") or values.get("machine"),
            machine=values.get("machine"),
            cores=int(values["nproc"]) if values.get("nproc", "").isdigit() else None,
            core_max_khz=max_khz, big_cores=_big_cores(max_khz),
            memory_bytes=int(memory.group(1)) * 1024 if memory else None,
            kernel=values.get("kernel"),
            # Android first: its release property is what tells a phone from a Linux board.
            os=(f"Android {props['ro.build.version.release']}"
                if android else values.get("osrelease")),
            libc="bionic" if android else c_library(loaders, values.get("machine")),
            python=versions.get("python"), python_error=versions.get("error"),
            packages={k: v for k, v in versions.items() if k not in ("python", "error")},
            workdir=self.workdir)

    def _python_versions(self) -> dict[str, Any]:
        packages = " ".join(shlex.quote(p) for p in _device_packages())
        result = self.shell(f"{shlex.quote(self.python)} -c {shlex.quote(VERSIONS_SCRIPT)} "
                            f"{packages}")
        if result.returncode != 0:
            return {"python": None, "error": (result.stderr or result.stdout).strip()[-300:]}
        try:
            return json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"python": None}

    def cpu_count(self) -> int:
        facts = self.facts()
        return len(self._pinned_cores()) or facts.cores or 1

    def _pinned_cores(self) -> list[int]:
        facts = self.facts()  # first: they say whether taskset is there
        if not self.options.pin_big_cores or not self._has_taskset:
            return []
        return facts.big_cores

    def run_notes(self) -> list[str]:
        facts = self.facts()
        if self.options.pin_big_cores and facts.big_cores and not self._has_taskset:
            return [f"ran unpinned: the device has no taskset, so the runner could not be "
                    f"kept on its big cores ({','.join(map(str, facts.big_cores))}); "
                    "its scheduler chose the cores"]
        return []

    def load_window(self, window_s: float) -> CompetingLoad | None:
        """One shell call reads /proc/stat twice, ``window_s`` apart, for the cores the
        runner is pinned to (every core where it runs unpinned)."""
        mark = "aiotbench-window"
        try:
            answer = self.shell(f"cat /proc/stat && sleep {window_s:g} && echo {mark} && "
                                "cat /proc/stat", timeout=window_s + 60).stdout
        except DeviceError:
            return None
        before, _, after = answer.partition(mark)
        return CompetingLoad.between(before, after, self._pinned_cores() or None)

    def stage(self, local_path: Path, sha256: str | None = None,
              executable: bool = False) -> str:
        local_path = Path(local_path)
        digest = sha256 or sha256_file(local_path)
        memo = f"{local_path}:{digest}"
        if memo in self._staged:
            return self._staged[memo]
        remote_dir = posixpath.join(self.workdir, "files", digest[:16])
        remote = posixpath.join(remote_dir, local_path.name)
        if self._remote_sha256(remote) == digest:
            self.deploy_stats.skipped_same_hash += 1
        else:
            size = local_path.stat().st_size
            # One shell call makes the folder and asks for its free space: a file that cannot
            # fit is refused before the push, with the sizes (adb's own answer is a bare FAIL).
            free = self._free_bytes(remote_dir, make=True)
            self.pushed.append(remote_dir)  # removed at close, even when nothing went in
            if free is not None and size > free:
                raise NoSpace(self._no_space(local_path.name, size, free))
            for attempt in range(PUSH_ATTEMPTS):
                try:
                    self._call(f"push {local_path.name}", self.device.sync.push, str(local_path),
                               remote, mode=0o755 if executable else 0o644)
                except DeviceError as exc:
                    failure = self._push_failed(exc, local_path.name, remote, size)
                    # adb's sync answers a bare FAIL now and then (an adbd under load): a push
                    # that failed for another reason than space is tried once more.
                    if (self._lost or isinstance(failure, NoSpace)
                            or attempt + 1 == PUSH_ATTEMPTS):
                        raise failure from exc
                    continue
                self.deploy_stats.retried += attempt > 0
                break
            if self._remote_sha256(remote) != digest:
                raise self._push_failed(
                    DeviceError(f"device {self._name()}: {remote} does not match {local_path} "
                                "after the push"), local_path.name, remote, size)
            self.deploy_stats.pushed += 1
            self.deploy_stats.bytes_pushed += size
        self._staged[memo] = remote
        return remote

    def _free_bytes(self, folder: str, make: bool = False) -> int | None:
        """Free space for the session's files in ``folder`` (df -k, in bytes); None where df
        is missing, fails or prints what is not understood: then nothing is refused."""
        quoted = shlex.quote(folder)
        # stderr kept out of the parse: toybox and busybox warn there about other mounts.
        command = (f"mkdir -p {quoted}; " if make else "") + f"df -k {quoted} 2>/dev/null"
        try:
            return df_available_bytes(self.shell(command).stdout)
        except DeviceError:  # the device may be gone: the push that follows says so
            return None

    def _no_space(self, name: str, size: int, free: int) -> str:
        return (f"device {self._name()}: no space for {name} ({human_size(size)}) in "
                f"{self.workdir}: {human_size(free)} free; free space on the device or point "
                "--aiot-adb-workdir at a larger folder")

    def _push_failed(self, error: DeviceError, name: str, remote: str, size: int) -> DeviceError:
        """A failed push, explained: a lack of space where df now says so (adb says FAIL)."""
        if self._lost:
            return error
        with contextlib.suppress(DeviceError):  # a partial file would take the others' space
            self.shell(f"rm -f {shlex.quote(remote)}")
        free = self._free_bytes(posixpath.dirname(remote))
        if free is None:
            return error
        reason = str(error).removeprefix(f"device {self._name()}: ")
        # Blocks and metadata take more than the file's bytes: a file within this slack of
        # the free space counts as not fitting.
        if size + SPACE_SLACK_BYTES > free:
            return NoSpace(f"{self._no_space(name, size, free)} (adb: {reason})")
        return DeviceError(f"device {self._name()}: {reason} ({human_size(free)} free in "
                           f"{self.workdir}: not a lack of space)")

    def _remote_sha256(self, remote: str) -> str | None:
        result = self.shell(f"sha256sum {shlex.quote(remote)} 2>/dev/null")
        if result.returncode != 0 or not result.stdout.strip():
            return None
        return result.stdout.split()[0]

    def existing(self, paths: list[str]) -> set[str] | None:
        quoted = " ".join(shlex.quote(path) for path in paths)
        try:  # one shell call for all; "checked" tells an answer from a shell that failed
            answer = self.shell(f'for p in {quoted}; do [ -e "$p" ] && echo "$p"; done; '
                                "echo checked")
        except DeviceError:
            return None
        lines = answer.stdout.splitlines()
        if not lines or lines[-1] != "checked":
            return None
        return set(lines[:-1]) & set(paths)

    def check_program(self, program: RunnerProgram) -> None:
        """Also: a native runner cannot start from a work folder mounted noexec (a phone's
        shared storage, /sdcard, is): said before anything is pushed, naming the mount."""
        super().check_program(program)
        if program.kind != "native":
            return
        if self._workdir_mount is None:
            # The work folder's nearest existing folder, links resolved (/sdcard is one),
            # then the mount table. The shell's own expansion climbs: a device may have no
            # dirname, and the loop must end on any path.
            quoted = shlex.quote(self.workdir)
            try:
                answer = self.shell(f'd={quoted}; while [ -n "$d" ] && [ ! -d "$d" ]; do '
                                    'case $d in */*) d=${d%/*} ;; *) d= ;; esac; done; '
                                    'cd "${d:-/}" && pwd -P; cat /proc/mounts').stdout
                folder, _, mounts = answer.partition("\n")
                self._workdir_mount = mount_of(mounts, folder.strip()) or ("", "")
            except DeviceError:
                self._workdir_mount = ("", "")
        point, options = self._workdir_mount
        if "noexec" in options.split(","):
            raise RunnerFailed(
                self.alias, "start",
                f"the work folder {self.workdir} is on {point}, mounted noexec ({options}): "
                "no program can be started from it, so the native runner cannot run there; "
                "point --aiot-adb-workdir at a folder on a mount that allows executables (a "
                "phone's /data/local/tmp)")

    def execute_runner(self, argv: list[str], env: dict[str, str], request: str,
                       timeout_s: float) -> tuple[int, str, str]:
        self._lock.acquire()
        name = f"request-{hashlib.sha256(request.encode()).hexdigest()[:16]}.json"
        with tempfile.TemporaryDirectory(prefix="aiotbench-request-") as scratch:
            local = Path(scratch) / name
            local.write_text(request)
            remote_request = self.stage(local)
        pin = self._pinned_cores()
        taskset = f"taskset -c {','.join(map(str, pin))} " if pin else ""
        # `timeout` bounds the total: adb's own timeout only bounds silence on the socket.
        variables = "".join(f"{name}={shlex.quote(value)} " for name, value in env.items())
        command = (f"cd {shlex.quote(self.workdir)} && {variables}{taskset}timeout "
                   f"{int(timeout_s)} {shlex.join(argv)} < {shlex.quote(remote_request)}")
        result = self._call("runner", self.device.shell2, command, timeout=timeout_s + 30,
                            v2=True)
        # coreutils' and toybox's timeout exit 124; busybox's exits 128 + SIGTERM
        if result.returncode in (124, 128 + signal.SIGTERM):
            raise RunnerFailed(self.alias, "timeout", f"no result within {timeout_s:.0f} s "
                               "(raise --aiot-timeout for slow models)", result.stderr)
        return result.returncode, result.stdout, result.stderr

    def close(self) -> None:
        try:
            if self.pushed and not self.options.keep_deployed and not self._lost:
                quoted = " ".join(shlex.quote(p) for p in dict.fromkeys(self.pushed))
                with contextlib.suppress(DeviceError):
                    self.shell(f"rm -rf {quoted}")
        finally:
            self._lock.release()


#: A file this close to the free space may still not fit (blocks, the folder's entries).
SPACE_SLACK_BYTES = 64 * 1024
#: Tries of one push (adb's sync fails now and then for no reason it gives).
PUSH_ATTEMPTS = 2


def mount_of(mounts: str, path: str) -> tuple[str, str] | None:
    """The mount point that holds ``path`` and its options, from /proc/mounts' text (the
    longest mount point above it; octal escapes such as \\040 for a space undone)."""
    best: tuple[str, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[3])
    return best


def c_library(loaders: dict[str, str], machine: str | None) -> str:
    """The C library a Linux device's programs load, from what its loaders answered (path ->
    first line): 'glibc 2.36', 'musl 1.2.4', 'none found'. The loader of the device's own
    CPU counts where there are several (a 64-bit board with a 32-bit userland beside it)."""
    if not loaders:
        return "none found"
    cpu = (machine or "").replace("_", "-")
    path = next((p for p in loaders if cpu and cpu in p.replace("_", "-")), next(iter(loaders)))
    family = "musl" if "musl" in path else "glibc"
    version = re.search(r"(\d+\.\d+(?:\.\d+)?)", loaders[path])
    return f"{family} {version.group(1)}" if version else family


def df_available_bytes(output: str) -> int | None:
    """The free space that ``df -k FOLDER`` prints, in bytes, from coreutils', busybox's and
    toybox's df alike: a header naming 1K (or 1024-byte) blocks, then the filesystem (busybox
    puts a long name on a line of its own), total, used, available, use%. None for anything
    else (an old toolbox df that prints sizes as 12.5G)."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Filesystem") and re.search(r"\b1(K|k|024)-blocks\b", line):
            tokens = " ".join(lines[index + 1:]).split()
            break
    else:
        return None
    for at in range(len(tokens) - 3):
        numbers = tokens[at:at + 3]
        if all(n.isdigit() for n in numbers) and re.fullmatch(r"\d+%|-", tokens[at + 3]):
            return int(numbers[2]) * 1024
    return None


def human_size(size: int) -> str:
    """1.2 MiB, 52 KiB, 300 bytes: as messages say sizes."""
    if size < 1024:
        return f"{size} bytes"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1024:.0f} KiB"


def _is_disconnect(exc: Exception) -> bool:
    if isinstance(exc, EOFError | ConnectionError | socket.timeout | BrokenPipeError):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("offline", "not found", "closed", "no devices"))


def _big_cores(max_khz: list[int]) -> list[int]:
    """The fastest cores, where the SoC mixes big and little ones (else: none to pin)."""
    if len(set(max_khz)) < 2:
        return []
    top = max(max_khz)
    return [index for index, khz in enumerate(max_khz) if khz == top]


def _alias_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name.strip()).strip("_")


class _HostLock:
    """One session at a time per device, across the sessions of this host.

    A process waits for these locks in one order, their paths' (one per serial): it never
    waits for a lock while it holds one that sorts after it, so two sessions sharing two
    devices cannot each hold what the other waits for. An earlier lock needed later is
    tried at once; where another session holds it, the later ones are let go while this
    one waits its turn, and are taken back after it, in order. (Taking every selected
    device's lock at once would order them too, but would stop an xdist farm's workers,
    each using its own devices of one selection, from running side by side.)
    """

    #: The locks this process holds, in the order taken.
    held: ClassVar[list[_HostLock]] = []

    def __init__(self, serial: str):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", serial)
        self.path = Path(tempfile.gettempdir()) / f"aiotbench-device-{safe}.lock"
        self.handle: Any = None

    def acquire(self, wait_s: float = 3600) -> None:
        if self.handle is not None:
            return
        later = sorted((lock for lock in _HostLock.held if lock.path > self.path),
                       key=lambda lock: lock.path)
        if later and self._take(wait_s, wait=False):
            return
        for lock in later:
            lock.release()
        self._take(wait_s)
        for lock in later:
            lock._take(wait_s)

    def _take(self, wait_s: float, wait: bool = True) -> bool:
        """Lock the file (waiting up to ``wait_s`` where ``wait``); whether it was taken."""
        handle = open(self.path, "a+")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    handle.close()
                    return False
                if time.monotonic() > deadline:
                    handle.close()
                    raise DeviceError(f"device lock {self.path} is held by another session "
                                      f"for over {wait_s:.0f} s") from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        _HostLock.held.append(self)
        return True

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
            _HostLock.held.remove(self)
