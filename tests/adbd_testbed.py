"""Real adb test devices: Debian's adbd, the device side of adb, run on this Linux host.

No phone is needed and nothing of ours is mocked: the plugin talks to a real adb server
(adbutils' bundled adb), which talks to a real adbd over TCP. The adbd comes from Debian's
bookworm-backports, unpacked into a cache folder by ``adbd/fetch_adbd.sh`` without a system
install. Each device gets its own model name (through a small ``getprop``), its own work
folder, and a ``python3`` that is the test environment's Python.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from debian_packages import PackageUnavailable, fetch_package

from pytest_aiotbench.devices.adb import connect_network_devices

HERE = Path(__file__).resolve().parent / "adbd"
CACHE = Path(os.environ.get("AIOTBENCH_ADBD_CACHE",
                            Path.home() / ".cache" / "pytest-aiotbench" / "adbd"))


#: What a phone's toybox offers that the plugin uses (no python3).
PHONE_TOOLS = ("sh", "cat", "ls", "mkdir", "rm", "chmod", "sha256sum", "taskset", "timeout",
               "nproc", "uname", "grep", "head", "env", "sleep", "id", "tr", "printf", "df")


class AdbdUnavailable(RuntimeError):
    pass


def fetch_adbd() -> dict[str, str]:
    """Unpack adbd (once; later calls read the cache) and return its binary and libraries."""
    try:
        return fetch_package(HERE / "fetch_adbd.sh", CACHE, "adbd")
    except PackageUnavailable as exc:
        raise AdbdUnavailable(str(exc)) from None


def free_port() -> int:
    """A free TCP port outside 5555-5585, which the adb server claims for emulators."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not 5555 <= port <= 5585:
            return port


def adb_client():
    import adbutils

    # Only matter if this process starts the server: no USB scan, no mDNS in a VM.
    os.environ.setdefault("ADB_LIBUSB", "0")
    os.environ.setdefault("ADB_MDNS", "0")
    return adbutils.AdbClient(host="127.0.0.1", port=5037)


def adb_server_running(port: int = 5037) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def kill_adb_server() -> None:
    import adbutils

    subprocess.run([adbutils.adb_path(), "kill-server"], capture_output=True, timeout=30,
                   check=False)


class DebianAdbd:
    """One adbd on a TCP port, connected to the adb server, as a phone would be."""

    def __init__(self, root: Path, model: str, *, cores: str | None = None,
                 python: str | None = sys.executable, props: dict[str, str] | None = None,
                 private_folder: str | None = None, tools: tuple[str, ...] = PHONE_TOOLS,
                 core_max_khz: tuple[int, ...] = ()):
        self.root = root
        self.model = model
        self.cores = cores
        #: None: a phone. Its PATH holds only a toolbox of shell commands, no Python at all.
        self.python = python
        self.props = props or {}
        #: A folder (e.g. /data/local/tmp) that is this device's own, as a phone's storage
        #: is: a bind mount in a mount namespace of its own, so boards on one host never
        #: see each other's files there.
        self.private_folder = private_folder
        #: A phone's toolbox (python=None): the shell commands on its PATH.
        self.tools = tools
        #: Each core's max frequency as the device's cpufreq tree says it (a tree of its own
        #: over /sys/devices/system/cpu, in the device's mount namespace); empty: the host's.
        self.core_max_khz = core_max_khz
        self.port = free_port()
        self.serial = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.marker = f"{os.getpid()}-{self.port}"

    def start(self) -> DebianAdbd:
        adbd = fetch_adbd()
        bin_dir = self.root / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "getprop").write_bytes((HERE / "getprop").read_bytes())
        (bin_dir / "getprop").chmod(0o755)
        if self.python is not None:
            # A wrapper, not a symlink: a venv's Python finds its packages from its own path.
            (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{self.python}" "$@"\n')
            (bin_dir / "python3").chmod(0o755)
            path = f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        else:
            # Like Android's toybox: the shell commands a phone has, and nothing else.
            for tool in self.tools:
                found = shutil.which(tool)
                if found and not (bin_dir / tool).exists():
                    (bin_dir / tool).symlink_to(found)
            path = str(bin_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(ADBD_PORT=str(self.port), ADBD_MODEL=self.model,
                   LD_LIBRARY_PATH=adbd["ADBD_LD_LIBRARY_PATH"], PATH=path,
                   AIOTBENCH_TEST_ADBD=self.marker)
        env.update({f"ADBD_PROP_{key.replace('.', '_')}": value
                    for key, value in self.props.items()})
        command = [adbd["ADBD_BIN"]]
        if self.cores is not None:
            command = ["taskset", "-c", self.cores, *command]
        mounts: list[tuple[Path, str]] = []
        if self.private_folder is not None:
            storage = self.root / "storage"
            storage.mkdir(exist_ok=True)
            Path(self.private_folder).mkdir(parents=True, exist_ok=True)
            mounts.append((storage, self.private_folder))
        if self.core_max_khz:
            mounts.append((self._cpu_tree(), "/sys/devices/system/cpu"))
        if mounts:
            # By their host paths: a phone's PATH has neither.
            mount = shutil.which("mount") or "/bin/mount"
            binds = " && ".join(f'{mount} --bind "${2 * i + 1}" "${2 * i + 2}"'
                                for i in range(len(mounts)))
            command = [shutil.which("unshare") or "unshare", "--mount", "--propagation",
                       "private", shutil.which("sh") or "/bin/sh", "-c",
                       f'{binds} && shift {2 * len(mounts)} && exec "$@"', "sh",
                       *(str(part) for pair in mounts for part in pair), *command]
        self.log = open(self.root / "adbd.log", "wb")
        self.process = subprocess.Popen(command, env=env, cwd=self.root, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_listening()
        adb_client()  # the tests' server, started here if need be
        # connected and waited for as the plugin does with a board named by its address
        failed = connect_network_devices([self.serial])
        if failed:
            self.stop()
            raise AdbdUnavailable(failed[self.serial])
        return self

    def _cpu_tree(self) -> Path:
        """A cpufreq tree whose cores differ in max frequency, as a phone's big and little."""
        tree = self.root / "cpu"
        for index, khz in enumerate(self.core_max_khz):
            cpufreq = tree / f"cpu{index}" / "cpufreq"
            cpufreq.mkdir(parents=True, exist_ok=True)
            (cpufreq / "cpuinfo_max_freq").write_text(f"{khz}\n")
        return tree

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AdbdUnavailable(f"adbd exited: {(self.root / 'adbd.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise AdbdUnavailable(f"adbd did not listen on {self.port}")

    def kill(self) -> None:
        """The device vanishes: adbd and everything it started die, with no goodbye."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._kill_leftovers()

    def stop(self) -> None:
        """Disconnect first, or the server keeps it as 'offline' for a minute."""
        with contextlib.suppress(Exception):
            adb_client().disconnect(self.serial)
        self.kill()
        with contextlib.suppress(Exception):
            self.log.close()

    def _kill_leftovers(self) -> None:
        # adbd's shells outlive it; find them by the marker in their environment.
        needle = f"AIOTBENCH_TEST_ADBD={self.marker}".encode()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            with contextlib.suppress(OSError):
                if needle in environ.read_bytes().split(b"\0"):
                    os.kill(int(environ.parent.name), signal.SIGKILL)
