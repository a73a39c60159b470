"""What a native runner is built for, and the toolchains that build for it.

A target is the OS family (its C library) and the CPU ABI, read off the device's facts. This
host builds for itself; for a Linux board of another CPU with the GNU cross compiler and that
CPU's wheels (``LINUX_ARCHITECTURES``); for Android with the NDK. Where it cannot, the
reason is a ``TargetUnsupported``: the device's items skip with it.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_aiotbench.devices.facts import DeviceFacts

#: Android ABIs the CMake project cross-compiles for (the NDK's names).
ANDROID_ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64")
#: The Linux CPU (uname -m) whose wheels a phone of each Android ABI runs through the loader
#: route: the Linux build with a glibc of its own. A 32-bit userland (armeabi-v7a) has none:
#: no framework here publishes 32-bit arm wheels.
ANDROID_LINUX_MACHINES = {"arm64-v8a": "aarch64", "x86_64": "x86_64"}

#: How a runner gets its C library on the device, as rows and the JSON say it.
LIBC_DEVICE = "the device's glibc"
LIBC_NDK = "bionic (NDK)"


def bundled_glibc(version: str) -> str:
    """The loader route's C library, as rows say it: 'glibc 2.36, bundled'."""
    return f"glibc {version}, bundled"


class NativeBuildError(RuntimeError):
    """A backend could not be built (or has no build for a device): the reason, in full."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What a runner binary runs on: the OS family (its C library) and the CPU ABI."""

    os: str  # "linux" (glibc) or "android" (bionic)
    abi: str  # uname -m on Linux (x86_64, aarch64), the NDK's ABI name on Android

    @property
    def name(self) -> str:
        return f"{self.os}-{self.abi}"

    @classmethod
    def host(cls) -> Target:
        return cls("linux", platform.machine())

    @classmethod
    def of_device(cls, facts: DeviceFacts) -> Target:
        """Android by its ``ro.product.cpu.abi``, a Linux board by its ``uname -m``."""
        if facts.is_android:
            return cls("android", facts.abi or facts.machine or "unknown")
        return cls("linux", facts.machine or "unknown")

    def linux(self) -> Target:
        """The Linux target whose build runs here through its own glibc (the loader route):
        itself on Linux, the ABI's CPU on Android. Raises TargetUnsupported where there is
        none (a 32-bit Android userland)."""
        if self.os == "linux":
            return self
        machine = ANDROID_LINUX_MACHINES.get(self.abi)
        if machine is None:
            raise TargetUnsupported(
                f"a phone with ABI {self.abi} runs a 32-bit userland, and no framework here "
                f"publishes wheels for it (no armv7 wheels of onnxruntime, ai-edge-litert, "
                f"executorch or torch), so no runner can be built from them; build one with "
                f"the NDK (README: Android) for {self.name}")
        return Target("linux", machine)

    @classmethod
    def parse(cls, name: str) -> Target:
        os_name, _, abi = name.partition("-")
        if os_name not in ("linux", "android") or not abi:
            raise ValueError(f"target {name!r}: use linux-<uname -m> (linux-aarch64) or "
                             f"android-<ABI> ({', '.join('android-' + a for a in ANDROID_ABIS)})")
        return cls(os_name, abi)


@dataclasses.dataclass(frozen=True)
class LinuxArchitecture:
    """What building for a Linux board of one CPU architecture takes from this host: a GNU
    cross compiler (Debian's package names it) and the frameworks' wheels for that CPU."""

    machine: str  # uname -m
    triple: str  # the cross compiler's prefix
    compiler_package: str  # the Debian/Ubuntu package that installs it
    #: The wheel platform tags accepted, newest glibc first; none newer than 2.28, so the
    #: libraries load on the boards' common distributions (Debian 10+, Ubuntu 20.04+).
    wheel_platforms: tuple[str, ...]

    def cross_compiler(self) -> str:
        return f"{self.triple}-g++"


def _manylinux(machine: str, *glibc: str) -> tuple[str, ...]:
    return (*(f"manylinux_{version}_{machine}" for version in glibc),
            f"manylinux2014_{machine}")


#: The Linux CPU architectures a runner can be cross-built for (when their wheels exist).
LINUX_ARCHITECTURES = {arch.machine: arch for arch in (
    LinuxArchitecture("aarch64", "aarch64-linux-gnu", "g++-aarch64-linux-gnu",
                      _manylinux("aarch64", "2_28", "2_27", "2_17")),
    LinuxArchitecture("x86_64", "x86_64-linux-gnu", "g++-x86-64-linux-gnu",
                      _manylinux("x86_64", "2_28", "2_27", "2_17")),
    LinuxArchitecture("armv7l", "arm-linux-gnueabihf", "g++-arm-linux-gnueabihf",
                      _manylinux("armv7l", "2_28", "2_27", "2_17")),
    LinuxArchitecture("riscv64", "riscv64-linux-gnu", "g++-riscv64-linux-gnu",
                      _manylinux("riscv64", "2_28", "2_27", "2_17")),
)}


class TargetUnsupported(NativeBuildError):
    """This host cannot build for a device's target (no wheel for its CPU, no cross
    compiler): the device's items skip with the reason and what to install."""


# ------------------------------------------------------------------ toolchains
@dataclasses.dataclass(frozen=True)
class CrossCompile:
    """An Android build: the NDK and, per framework, the AAR's libraries and headers."""

    abi: str
    ndk: Path
    api_level: int = 24
    defines: dict[str, str] = dataclasses.field(default_factory=dict)

    def toolchain_defines(self) -> dict[str, str]:
        """What CMake is configured with for this target, the core and every backend alike."""
        return {"CMAKE_TOOLCHAIN_FILE": str(self.ndk / "build" / "cmake"
                                            / "android.toolchain.cmake"),
                "ANDROID_ABI": self.abi, "ANDROID_PLATFORM": f"android-{self.api_level}",
                "ANDROID_STL": "c++_shared"}


@dataclasses.dataclass(frozen=True)
class LinuxCross:
    """A Linux board of another CPU: its GNU cross compiler, and CMake told the target
    system, so the same CMake project builds unchanged."""

    arch: LinuxArchitecture
    compiler: str  # the cross g++ found on PATH

    @classmethod
    def find(cls, arch: LinuxArchitecture) -> LinuxCross:
        compiler = shutil.which(arch.cross_compiler())
        if compiler is None:
            raise TargetUnsupported(
                f"no C++ cross compiler for linux-{arch.machine} ({arch.cross_compiler()} is "
                f"not on PATH): install the {arch.compiler_package} package (apt install "
                f"{arch.compiler_package})")
        return cls(arch, compiler)

    def runtime_folder(self, folder: Path) -> Path:
        """``folder`` holding links to the cross compiler's C++ runtime, bundled with the
        runner as the NDK's libc++_shared is: a board's own libstdc++ may be older than the
        one the runner was compiled against (glibc stays the board's)."""
        for name in ("libstdc++.so.6", "libgcc_s.so.1"):
            found = compiler_file(self.compiler, name)
            if found is not None:
                (folder / name).symlink_to(found)
        return folder

    def toolchain_defines(self) -> dict[str, str]:
        return {"CMAKE_SYSTEM_NAME": "Linux", "CMAKE_SYSTEM_PROCESSOR": self.arch.machine,
                "CMAKE_C_COMPILER": self.compiler.removesuffix("g++") + "gcc",
                "CMAKE_CXX_COMPILER": self.compiler}


def compiler_file(compiler: str, name: str) -> Path | None:
    """Where ``compiler`` links ``name`` from (its sysroot's libc.so.6, libstdc++.so.6, the
    loader): resolved, or None where it has no such file."""
    try:
        done = subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True,
                              text=True, check=False, timeout=60)
    except OSError:
        return None
    found = Path(done.stdout.strip())
    # An unknown name comes back as itself, not as a path.
    if done.returncode == 0 and found.is_absolute() and found.is_file():
        return found.resolve()
    return None


def ndk_clang(ndk: Path) -> Path:
    found = sorted((ndk / "toolchains" / "llvm" / "prebuilt").glob("*/bin/clang++"))
    if not found:
        raise NativeBuildError(f"{ndk} is not an Android NDK (no toolchains/llvm/prebuilt/*/"
                               "bin/clang++); pass --ndk with the NDK's root folder")
    return found[0]


_NDK_TRIPLES = {"arm64-v8a": "aarch64-linux-android", "armeabi-v7a": "arm-linux-androideabi",
                "x86_64": "x86_64-linux-android"}


def ndk_stl_dir(cross: CrossCompile) -> Path:
    return (ndk_clang(cross.ndk).parent.parent / "sysroot" / "usr" / "lib"
            / _NDK_TRIPLES[cross.abi])
