"""The emulated Android-shaped phone (``boards/android-phone``) for the tests: the arm64
board's machinery with a root shaped like Android's (no glibc where programs look for it,
adbd started by its private loader, busybox as /system/bin/sh, getprop, a big and a little
core in cpufreq). Started and stopped through the script, which says how it works.

Each phone has a folder of its own (its root copy and state), by default one per model under
:data:`CACHE`; qemu and the arm64 packages are the arm64 board's (:data:`arm64_board.CACHE`),
fetched there once for every phone and board. A fixture skips with the reason of
:class:`BoardUnavailable`, except in CI, where the phone must run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from arm64_board import CACHE as PACKAGES
from arm64_board import Arm64Board, BoardUnavailable, _script

__all__ = ["CACHE", "SCRIPT", "AndroidPhone", "BoardUnavailable", "fetch"]

SCRIPT = Path(__file__).resolve().parent / "boards" / "android-phone"
CACHE = Path(os.environ.get("AIOTBENCH_ANDROID_PHONE_CACHE",
                            Path.home() / ".cache" / "pytest-aiotbench" / "android-phone"))
DEFAULT_MODEL = "AIoT-Phone"


def folder_for(model: str) -> Path:
    """The phone's own folder under CACHE: one per model, so phones of different models can
    be up at once."""
    return CACHE / (re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "phone")


def fetch(model: str = DEFAULT_MODEL, folder: Path | None = None) -> None:
    """Fetch the shared packages (once) and build the phone's root (once per folder)."""
    _script("fetch", "--dir", str(folder or folder_for(model)), "--packages", str(PACKAGES),
            timeout=900, script=SCRIPT)


class AndroidPhone(Arm64Board):
    """One emulated phone on a free TCP port, connected to the tests' adb server."""

    script = SCRIPT

    def __init__(self, model: str = DEFAULT_MODEL, *, folder: Path | None = None,
                 props: dict[str, str] | None = None):
        super().__init__(model, folder=folder or folder_for(model), props=props)

    def up_options(self) -> list[str]:
        return ["--packages", str(PACKAGES)]
