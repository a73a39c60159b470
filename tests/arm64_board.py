"""The emulated arm64 board (``boards/arm64-board``) for the tests: Debian's arm64 adbd and
busybox, run through qemu-user and binfmt_misc in a chroot of their own, reached over adb as a
board or a phone is. Started and stopped through the script, which says how it works.

A fixture skips with the reason of :class:`BoardUnavailable` (not root, no binfmt_misc, not
Debian, no package mirror), except in CI, where the board must run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

from adbd_testbed import adb_client, free_port

from pytest_aiotbench.devices.adb import connect_network_devices

SCRIPT = Path(__file__).resolve().parent / "boards" / "arm64-board"
CACHE = Path(os.environ.get("AIOTBENCH_ARM64_BOARD_CACHE",
                            Path.home() / ".cache" / "pytest-aiotbench" / "arm64-board"))
#: The script's exit status when the board cannot run on this machine.
UNAVAILABLE = 3


class BoardUnavailable(RuntimeError):
    """The board cannot run here; the message says why."""


def _script(*args: str, timeout: float,
            script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    """Run a board script (arm64-board, or one built on it that takes its command line)."""
    # close_fds (the default): a lock this process holds must not reach the board.
    done = subprocess.run([str(script), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, close_fds=True)
    if done.returncode == UNAVAILABLE:
        raise BoardUnavailable(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                               else f"{script.name}: unavailable")
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {args[0]} failed ({done.returncode}): "
                           f"{done.stderr[-3000:]}")
    return done


def fetch(folder: Path = CACHE) -> None:
    """Fetch and unpack what the board needs (once; later calls are offline)."""
    _script("fetch", "--dir", str(folder), timeout=900)


class Arm64Board:
    """One emulated board on a free TCP port, connected to the tests' adb server."""

    #: The script that starts and stops it (a subclass names its own).
    script = SCRIPT

    def __init__(self, model: str = "arm64-board", *, folder: Path = CACHE,
                 props: dict[str, str] | None = None):
        self.model = model
        self.folder = folder
        self.props = props or {}
        self.port = free_port()
        self.serial = f"127.0.0.1:{self.port}"
        #: What ``up`` recorded: its PID, its binfmt_misc registration's name, its root.
        self.record: dict[str, object] = {}

    @property
    def binfmt_name(self) -> str:
        return str(self.record["binfmt"])

    def start(self, connect: bool = True) -> str:
        """Start the board (fetching first if need be) and return its serial, connected to
        the adb server and in state 'device' unless ``connect`` is false."""
        props = [f"--prop={key}={value}" for key, value in self.props.items()]
        done = _script("up", "--dir", str(self.folder), "--port", str(self.port),
                       "--model", self.model, *props, *self.up_options(), timeout=900,
                       script=self.script)
        lines = done.stdout.strip().splitlines()
        if not lines or lines[-1] != self.serial:
            raise RuntimeError(f"{self.script.name} up printed {done.stdout!r}, "
                               f"not {self.serial}")
        self.record = json.loads((self.folder / "run" / "board.json").read_text())
        if connect:
            self._connect()
        return self.serial

    def up_options(self) -> list[str]:
        """More options for the script's ``up``."""
        return []

    def _connect(self) -> None:
        adb_client()  # the tests' server, started here if need be
        failed = connect_network_devices([self.serial])
        if failed:
            self.stop()
            raise RuntimeError(failed[self.serial])

    def stop(self) -> None:
        """Disconnect first (or the server keeps it 'offline' for a minute), then ``down``:
        every process of the board ends and its binfmt registration goes."""
        with contextlib.suppress(Exception):
            adb_client().disconnect(self.serial)
        _script("down", "--dir", str(self.folder), timeout=60, script=self.script)
