"""Which runner measures a workload on a device: the Python script or a native build.

``--aiot-runner``: ``python`` always the script; ``native`` always a native build for the
device's target; ``auto`` the script where the device's Python has numpy and the framework,
else a native build. A native build for a Linux target (this host's, or a board's other CPU:
cross-compiled from that CPU's wheels) is made on demand, as artifacts are exported; one for
an Android ABI must have been built by the user (with the NDK). Where none can be had, the
item skips with the reason and the ways out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.runner.native.build import (
    BUILD_COMMAND,
    NativeBuilder,
    NativeRunner,
    frameworks_with_backends,
)
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


PYTHON_RUNNER = RunnerProgram("python", RUNNER_SCRIPT)


class RunnerChooser:
    """Picks the runner per (device, framework); builds host-target native runners once."""

    def __init__(self, choice: str, builder: NativeBuilder):
        if choice not in RUNNER_CHOICES:
            raise ValueError(f"runner {choice!r}: choose one of {', '.join(RUNNER_CHOICES)}")
        self.choice = choice
        self.builder = builder
        self._built: dict[tuple[str, str], NativeRunner | NativeBuildError] = {}

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
            native = self._native(framework, target)
        except TargetUnsupported as exc:
            raise RunnerUnavailable(f"device {facts.alias!r} ({target.name}): {exc}. Or "
                                    + self._python_way(framework, requirement)) from None
        if native is None:
            raise RunnerUnavailable(self._no_runner(facts, framework, target, requirement))
        return RunnerProgram("native", native.executable, native.libraries, native)

    def _native(self, framework: str, target: Target) -> NativeRunner | None:
        if framework not in frameworks_with_backends():
            return None
        if target.os == "android":  # built by the user, with the NDK and the AARs
            return self.builder.find(framework, target)
        key = (framework, target.name)
        if key not in self._built:
            try:
                self._built[key] = self.builder.build(framework, target=target)
            except TargetUnsupported as exc:  # a build put in the cache by hand still serves
                self._built[key] = self.builder.find(framework, target) or exc
            except NativeBuildError as exc:  # remembered: one failure report per session
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


def python_has(facts: DeviceFacts, device_packages: tuple[str, ...]) -> bool:
    """Whether the device's Python (as its facts list) has numpy and one of the packages."""
    packages = facts.packages
    return bool(packages.get("numpy")) and any(packages.get(p) for p in device_packages)
