"""The emulated Android-shaped phone rig (tests/boards/android-phone) itself: reached through
the tests' adb server, it looks like a phone to the plugin (getprop, arm64-v8a, a big and a
little core, /data/local/tmp), has no glibc where programs look for it, and `down` leaves
nothing. One phone serves the module; a second one is started only to be told apart."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from adbd_testbed import PHONE_TOOLS, adb_client, adb_server_running, kill_adb_server
from adbutils import ShellReturn
from android_phone import AndroidPhone, BoardUnavailable
from conftest import unavailable
from test_arm64_board_rig import BINFMT, processes_rooted_in

#: The plugin's own loop over the cores' max frequencies (devices/adb.py, FACTS_SCRIPT).
MAX_FREQS = ("for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
             "cat $f; done")
MISSING_LOADER = "Could not open '/lib/ld-linux-aarch64.so.1'"


@pytest.fixture(scope="module")
def phone() -> Iterator[AndroidPhone]:
    server_was_running = adb_server_running()
    started = AndroidPhone("AIoT-Phone rig")
    try:
        started.start()
    except BoardUnavailable as exc:
        unavailable("emulated Android phone", exc)
    yield started
    started.stop()
    if not server_was_running:  # leave the machine as it was
        kill_adb_server()


def shell(phone: AndroidPhone, command: str) -> ShellReturn:
    """The plugin's way: shell v2, exit status and stderr kept apart."""
    return adb_client().device(phone.serial).shell2(command, v2=True)


def test_the_phone_answers_as_an_android_phone_with_an_arm64_shell(phone):
    device = adb_client().device(phone.serial)
    assert device.shell("getprop ro.product.cpu.abi").strip() == "arm64-v8a"
    assert device.shell("getprop ro.product.model").strip() == "AIoT-Phone rig"
    assert device.shell("getprop ro.build.version.release").strip() == "14"
    assert device.shell("getprop ro.build.version.sdk").strip() == "34"
    assert device.shell("uname -m").strip() == "aarch64"
    assert device.shell("echo $PATH").strip() == "/system/bin"
    assert shell(phone, "command -v python3 || command -v python").returncode != 0
    for tool in PHONE_TOOLS:
        assert shell(phone, f"command -v {tool}").returncode == 0, tool


def test_a_glibc_program_finds_no_loader_there_but_runs_by_the_private_one(phone, tmp_path):
    for folder in ("/lib", "/lib64", "/usr"):
        assert shell(phone, f"ls -d {folder}").returncode != 0, folder
    assert shell(phone, "ls /lib/ld-linux-aarch64.so.1").returncode != 0
    # An ordinary glibc arm64 program (glibc's libc.so.6 runs and says its version), pushed
    # where the plugin pushes: the copy adbd's loader uses, from the phone's root.
    program = Path(str(phone.record["root"])) / "apex" / "adbd" / "lib" / "libc.so.6"
    remote = "/data/local/tmp/aiotbench/glibc-program"
    assert shell(phone, "mkdir -p /data/local/tmp/aiotbench").returncode == 0
    device = adb_client().device(phone.serial)
    device.sync.push(program, remote)
    digest = shell(phone, f"sha256sum {remote}")
    assert digest.stdout.split()[0] == hashlib.sha256(program.read_bytes()).hexdigest()
    assert shell(phone, f"chmod 755 {remote}").returncode == 0
    alone = shell(phone, remote)
    assert alone.returncode == 255, alone
    assert MISSING_LOADER in alone.stderr
    loaded = shell(phone, "/apex/adbd/ld-linux-aarch64.so.1 --library-path /apex/adbd/lib "
                   + remote)
    assert loaded.returncode == 0, loaded
    assert "GNU C Library" in loaded.stdout
    assert shell(phone, "touch /tmp/written && rm /tmp/written").returncode == 0


def test_the_cores_differ_in_max_frequency_and_the_big_one_can_be_pinned(phone):
    freqs = [int(line) for line in shell(phone, MAX_FREQS).stdout.split()]
    assert freqs[:2] == [1_800_000, 2_400_000]
    assert int(shell(phone, "nproc").stdout) == len(freqs)
    pinned = shell(phone, "taskset -c 1 true && timeout 10 true")
    assert pinned.returncode == 0, pinned


def test_two_phones_of_different_models_run_at_once_and_down_leaves_nothing(phone):
    second = AndroidPhone("AIoT-Phone rig B", props={"ro.soc.model": "SM-TEST"})
    try:
        second.start()
    except BoardUnavailable as exc:
        unavailable("emulated Android phone", exc)
    try:
        assert second.folder != phone.folder and second.binfmt_name != phone.binfmt_name
        states = {device.serial: device.state for device in adb_client().list()}
        assert states[phone.serial] == states[second.serial] == "device"
        assert shell(second, "getprop ro.product.model").stdout.strip() == "AIoT-Phone rig B"
        assert shell(second, "getprop ro.soc.model").stdout.strip() == "SM-TEST"
        assert shell(phone, "getprop ro.product.model").stdout.strip() == "AIoT-Phone rig"
        assert (BINFMT / second.binfmt_name).read_text().startswith("enabled")
    finally:
        second.stop()
    assert not (BINFMT / second.binfmt_name).exists()
    assert not processes_rooted_in(str(second.record["root"]))
    # the first phone is untouched, its registration included
    assert shell(phone, "uname -m").stdout.strip() == "aarch64"
    assert (BINFMT / phone.binfmt_name).exists()
