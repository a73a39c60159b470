"""Which runner measures a workload on a device: the Python script or a native build.

``--aiot-runner``: ``python`` always the script; ``native`` always a native build for the
device's target; ``auto`` the script where the device's Python has numpy and the framework,
else a native build. A native build for a Linux target (this host's, or a board's other CPU:
cross-compiled from that CPU's wheels) is made on demand. Where the device's C library cannot
load it (an Android phone's bionic, musl, a glibc older than the build needs), the same build
goes with the glibc it was linked against, started through that glibc's loader: the loader
route. On a phone, a build the user made with the NDK (bionic: the way to vendor delegates)
wins where the cache has one. Where none can be had, the item skips with the reason and the
ways out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.runner.native.build import (
    BUILD_COMMAND,
    NativeBuilder,
    NativeRunner,
    frameworks_with_backends,
)
from pytest_aiotbench.runner.native.elf import glibc_version
from pytest_aiotbench.runner.native.targets import NativeBuildError, Target, TargetUnsupported

RUNNER_CHOICES = ("auto", "python", "native")
RUNNER_SCRIPT = Path(__file__).resolve().parent / "aiot_runner.py"


class RunnerUnavailable(LookupError):
    """No runner can measure this framework on this device: the item is skipped."""


@dataclasses.dataclass(frozen=True)
class RunnerProgram:
    """What a device stages and starts to measure one workload."""

    kind: str  # "python" or "native"
    executable: Path
    libraries: tuple[Path, ...] = ()
    native: NativeRunner | None = None

    @property
    def loader(self) -> Path | None:
        """The bundled dynamic loader that starts the executable (the loader route)."""
        return self.native.loader if self.native is not None else None


PYTHON_RUNNER = RunnerProgram("python", RUNNER_SCRIPT)


class RunnerChooser:
    """Picks the runner per (device, framework); builds host-target native runners once."""

    def __init__(self, choice: str, builder: NativeBuilder):
        if choice not in RUNNER_CHOICES:
            raise ValueError(f"runner {choice!r}: choose one of {', '.join(RUNNER_CHOICES)}")
        self.choice = choice
        self.builder = builder
        self._built: dict[tuple[str, ...], NativeRunner | NativeBuildError] = {}

    def program(self, facts: DeviceFacts, framework: str, device_packages: tuple[str, ...],
                requirement: str) -> RunnerProgram:
        """The runner for ``framework`` on the device described by ``facts``.

        Raises RunnerUnavailable (skip) or NativeBuildError (the build failed: its reason).
        """
        if self.choice == "python":
            return PYTHON_RUNNER
        local = facts.kind == "local"
        if self.choice == "auto" and (local or python_has(facts, device_packages)):
            return PYTHON_RUNNER
        target = Target.host() if local else Target.of_device(facts)
        try:
            native = self._native(framework, target, facts)
        except TargetUnsupported as exc:
            raise RunnerUnavailable(f"device {facts.alias!r} ({target.name}): {exc}. Or "
                                    + self._python_way(framework, requirement)) from None
        if native is None:
            raise RunnerUnavailable(self._no_runner(facts, framework, target, requirement))
        return RunnerProgram("native", native.executable, native.libraries, native)

    def _native(self, framework: str, target: Target,
                facts: DeviceFacts) -> NativeRunner | None:
        if framework not in frameworks_with_backends():
            return None
        if target.os == "android":
            ndk = self.builder.find(framework, target)  # the user's own (bionic) build wins
            if ndk is not None:
                return ndk
        linux = target.linux()  # a 32-bit Android ABI: TargetUnsupported, saying why
        runner = self._once(("build", framework, linux.name),
                            lambda: self._linux_build(framework, linux))
        if target.os == "linux" and not needs_own_glibc(facts, runner):
            return runner
        return self._once(("glibc", framework, target.name),
                          lambda: self.builder.with_own_glibc(runner, target))

    def _linux_build(self, framework: str, target: Target) -> NativeRunner:
        try:
            return self.builder.build(framework, target=target)
        except TargetUnsupported as exc:  # a build put in the cache by hand still serves
            found = self.builder.find(framework, target)
            if found is None:
                raise exc from None
            return found

    def _once(self, key: tuple[str, ...],
              make: Callable[[], NativeRunner]) -> NativeRunner:
        """A build made once a session; a failure remembered (one failure report each)."""
        if key not in self._built:
            try:
                self._built[key] = make()
            except NativeBuildError as exc:
                self._built[key] = exc
        built = self._built[key]
        if isinstance(built, NativeBuildError):
            raise built
        return built

    @staticmethod
    def _python_way(framework: str, requirement: str) -> str:
        return (f"install Python with numpy and {framework} on the device ({requirement}) "
                "and use --aiot-runner=auto")

    def _no_runner(self, facts: DeviceFacts, framework: str, target: Target,
                   requirement: str) -> str:
        device = f"device {facts.alias!r} ({target.name})"
        if framework in frameworks_with_backends():
            android = (f" --android-abi {target.abi} --ndk NDK --define AIOT_..._LIBRARY=..."
                       if target.os == "android" else "")
            build = (f"build one: `{BUILD_COMMAND} --framework {framework}{android}` "
                     "(README: Android)")
            missing = f"no native {framework} runner is built for {target.name}"
        else:
            build, missing = "", f"the native runner has no {framework} backend"
        python = self._python_way(framework, requirement)
        if self.choice == "auto":
            return (f"{device} has no Python with {framework}, and {missing}. Either "
                    + (f"{build}, or {python}" if build else python))
        return f"{device}: {missing}. " + (f"Either {build}, or {python}" if build else python)


def needs_own_glibc(facts: DeviceFacts, runner: NativeRunner) -> bool:
    """Whether a Linux device's C library cannot load ``runner`` (a glibc build): musl, no
    glibc found, or a glibc older than its files ask for. Unknown (older facts, a device that
    could not tell): no, the device's own is tried."""
    if facts.kind == "local" or not facts.libc:
        return False
    family, _, version = facts.libc.partition(" ")
    if family != "glibc":
        return True
    needed = runner.glibc_needed()
    have = glibc_version(version)
    return needed is not None and have is not None and have < needed


def python_has(facts: DeviceFacts, device_packages: tuple[str, ...]) -> bool:
    """Whether the device's Python (as its facts list) has numpy and one of the packages."""
    packages = facts.packages
    return bool(packages.get("numpy")) and any(packages.get(p) for p in device_packages)
