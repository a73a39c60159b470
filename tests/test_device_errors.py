"""The pieces behind the devices' clear errors, on their own: df as each toolbox prints it,
what shells say when they cannot execute a file, an ELF file's machine and loader. The errors
themselves, on a real adb device, are in test_adb_devices.py."""

from __future__ import annotations

import platform
import struct
import sys

import pytest

from pytest_aiotbench.devices.adb import df_available_bytes, human_size
from pytest_aiotbench.devices.base import _exec_failure
from pytest_aiotbench.runner.native import elf


def tiny_elf(machine: int, interpreter: str | None = None) -> bytes:
    """A 64-bit little-endian ELF executable of ``machine`` (62: x86-64, 183: AArch64) with a
    PT_INTERP naming ``interpreter``: enough for a kernel to judge it, nothing to run."""
    loader = interpreter.encode() + b"\0" if interpreter else b""
    phnum = 1 if loader else 0
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, machine, 1, 0x400000, 64 if phnum else 0, 0, 0, 64, 56, phnum,
        64, 0, 0)
    program_header = (struct.pack("<IIQQQQQQ", 3, 4, 64 + 56, 0, 0, len(loader), len(loader),
                                  1) if loader else b"")
    return header + program_header + loader


@pytest.mark.parametrize(("output", "free_kib"), [
    # coreutils
    ("Filesystem     1K-blocks  Used Available Use% Mounted on\n"
     "tmpfs                 64    12        52  19% /tmp/a dir\n", 52),
    # toybox (Android)
    ("Filesystem       1K-blocks    Used Available Use% Mounted on\n"
     "/dev/block/dm-5  113207312 5474224 107602000   5% /data\n", 107602000),
    # busybox puts a long filesystem name on a line of its own
    ("Filesystem           1K-blocks      Used Available Use% Mounted on\n"
     "/dev/mapper/vg0-a-very-long-volume-name\n"
     "                      10190100   2003000   7646428  21% /data\n", 7646428),
    # POSIX output (df -kP)
    ("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
     "/dev/root 30000 1000 29000 4% /\n", 29000),
    # an old Android toolbox df: sizes, not blocks -> unknown, nothing refused
    ("Filesystem               Size     Used     Free   Blksize\n"
     "/data                   12.5G     5.2G     7.3G   4096\n", None),
    ("", None),
])
def test_df_output_of_each_toolbox_is_read(output, free_kib):
    expected = free_kib * 1024 if free_kib is not None else None
    assert df_available_bytes(output) == expected


def test_sizes_are_said_in_binary_units():
    assert [human_size(n) for n in (300, 52 * 1024, 1_258_291, 3 << 30)] == [
        "300 bytes", "52 KiB", "1.2 MiB", "3.0 GiB"]


RUNNER = "/data/local/tmp/aiotbench/files/0123456789abcdef/aiot_runner_onnxruntime"


@pytest.mark.parametrize(("code", "stderr", "says"), [
    # coreutils timeout: the loader (or the file) is absent
    (127, f"timeout: failed to run command '{RUNNER}': No such file or directory", True),
    # busybox and toybox timeout
    (127, f"timeout: can't execute '{RUNNER}': No such file or directory", True),
    # Android's mksh
    (126, f"/system/bin/sh: {RUNNER}: not executable: 64-bit ELF file", True),
    # bash
    (126, f"bash: {RUNNER}: cannot execute binary file: Exec format error", True),
    # ENOEXEC: sh reads the binary as a script (dash, busybox ash)
    (2, f'{RUNNER}: 1: Syntax error: "(" unexpected', True),
    (2, f"{RUNNER}: line 1: syntax error: unexpected word", True),
    (127, f"{RUNNER}: 1: \x7fELF\x02\x01\x01: not found", True),
    # a folder mounted noexec
    (126, f"timeout: failed to run command '{RUNNER}': Permission denied", True),
    # the loader ran: a missing library, an older C library (said as such elsewhere)
    (127, f"{RUNNER}: error while loading shared libraries: libonnxruntime.so.1: cannot open "
          "shared object file: No such file or directory", False),
    (1, f"{RUNNER}: /lib/aarch64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found "
        f"(required by {RUNNER})", False),
    # the runner ran and failed: its own words
    (1, "onnxruntime: cannot load /data/model.onnx: No such file or directory", False),
    (139, "Segmentation fault", False),
])
def test_a_shell_that_could_not_execute_the_runner_is_told_from_a_runner_that_failed(
        code, stderr, says):
    line = _exec_failure(RUNNER, code, stderr + "\n")
    assert (line == stderr) if says else line is None


def test_python_s_own_complaints_are_not_taken_for_a_missing_python():
    assert _exec_failure("python3", 2, "python3: can't open file '/x/aiot_runner.py': [Errno 2] "
                         "No such file or directory") is None
    assert _exec_failure("python3", 127, "sh: 1: python3: not found") == "sh: 1: python3: not found"


def test_an_elf_header_gives_its_machine_and_loader(tmp_path):
    arm64 = tmp_path / "arm64"
    arm64.write_bytes(tiny_elf(183, "/lib/ld-linux-aarch64.so.1"))
    assert elf.header(arm64) == elf.Header("aarch64", 64, "/lib/ld-linux-aarch64.so.1")
    static = tmp_path / "static"
    static.write_bytes(tiny_elf(62))
    assert elf.header(static) == elf.Header("x86_64", 64, None)
    host = elf.header(sys.executable)  # this Python, as the host built it
    assert host.machine == elf.architecture(platform.machine()) and host.interpreter
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(elf.NotElf):
        elf.machine(script)


@pytest.mark.parametrize(("name", "architecture"), [
    ("aarch64", "aarch64"), ("arm64-v8a", "aarch64"), ("armv7l", "arm"), ("armv8l", "arm"),
    ("armeabi-v7a", "arm"), ("x86_64", "x86_64"), ("x86", "i686"), ("i686", "i686"),
    ("riscv64", "riscv64"), ("sparc64", None), (None, None)])
def test_a_device_s_names_for_its_architecture_become_one(name, architecture):
    assert elf.architecture(name) == architecture


def test_a_32_bit_elf_is_read(tmp_path):
    # A 32-bit ARM executable header with a PT_INTERP (the armhf loader).
    loader = b"/lib/ld-linux-armhf.so.3\0"
    header = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9) + struct.pack(
        "<HHIIIIIHHHHHH", 2, 40, 1, 0x10000, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    program_header = struct.pack("<IIIIIIII", 3, 52 + 32, 0, 0, len(loader), len(loader), 4, 1)
    path = tmp_path / "armhf"
    path.write_bytes(header + program_header + loader)
    assert elf.header(path) == elf.Header("arm", 32, "/lib/ld-linux-armhf.so.3")
