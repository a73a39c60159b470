"""Where a framework's libraries and headers come from: the host's installed wheels, or
the wheels of the same releases for another CPU, fetched and unpacked into the cache."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from pytest_aiotbench.artifacts.cache import ArtifactCache
from pytest_aiotbench.runner.native.targets import (
    LinuxArchitecture,
    NativeBuildError,
    TargetUnsupported,
)

#: A folder of wheels for other CPUs (what `pip download` fetched earlier, or a wheelhouse
#: kept by CI): looked in before the package index, and where fetched wheels are kept.
WHEELS_ENV = "AIOTBENCH_WHEELS"

Progress = Callable[[str], None]


def host_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        raise NativeBuildError(f"the {distribution} package is not installed: pip install "
                               f"{distribution}") from None


class PackageSite:
    """Where a framework's wheel contents are found: the host's installed packages."""

    def package_dir(self, module: str, distribution: str) -> Path:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise NativeBuildError(f"the {distribution} package is not installed: pip install "
                                   f"{distribution}")
        return Path(next(iter(spec.submodule_search_locations)))

    def version(self, distribution: str) -> str:
        return host_version(distribution)


class WheelSite(PackageSite):
    """The same distributions for another CPU: the wheels of the host's versions for that
    architecture, fetched once (``pip download``, or found in the wheel folder) and unpacked
    into the cache."""

    def __init__(self, arch: LinuxArchitecture, cache: ArtifactCache, wheels: Path,
                 progress: Progress):
        self.arch = arch
        self.cache = cache
        self.wheels = wheels
        self.progress = progress
        self._unpacked: dict[str, Path] = {}

    def package_dir(self, module: str, distribution: str) -> Path:
        folder = self.unpacked(distribution) / module
        if not folder.is_dir():
            raise NativeBuildError(f"the {distribution} wheel for {self.arch.machine} has no "
                                   f"{module}/ folder")
        return folder

    def version(self, distribution: str) -> str:
        # The host's release without its local label: torch 2.13.0+cpu on x86-64 is the
        # same release as PyPI's aarch64 torch 2.13.0, a CPU build there by default.
        return host_version(distribution).split("+")[0]

    def library_dirs(self) -> tuple[Path, ...]:
        """The folders auditwheel puts a wheel's own copies of outside libraries in."""
        return tuple(sorted(folder for root in self._unpacked.values()
                            for folder in root.glob("*.libs") if folder.is_dir()))

    def unpacked(self, distribution: str) -> Path:
        if distribution not in self._unpacked:
            version = self.version(distribution)  # the host's: both sides the same release
            parts = {"wheel": distribution, "version": version, "machine": self.arch.machine,
                     "platforms": self.arch.wheel_platforms}

            def unpack(listing: Path) -> list[str]:
                wheel = self.wheel(distribution, version)
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(listing.parent)
                    names = archive.namelist()
                listing.write_text(json.dumps({"wheel": wheel.name, "files": names}))
                return [wheel.name]

            entry = self.cache.get_or_build(
                f"wheel-{self.arch.machine}-{distribution}", parts, "wheel.json", unpack)
            self._unpacked[distribution] = entry.path.parent
        return self._unpacked[distribution]

    def wheel(self, distribution: str, version: str) -> Path:
        """The wheel file: from the wheel folder when it is there, else from the index."""
        found = self._in_folder(distribution, version)
        if found is not None:
            return found
        self.progress(f"aiotbench: fetching the {distribution} {version} wheel for "
                      f"{self.arch.machine} ...")
        command = [sys.executable, "-m", "pip", "download", "--quiet",
                   "--disable-pip-version-check", "--only-binary=:all:", "--no-deps",
                   "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                   *(arg for tag in self.arch.wheel_platforms for arg in ("--platform", tag)),
                   "--dest", str(self.wheels), f"{distribution}=={version}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=1800)
        found = self._in_folder(distribution, version)
        if done.returncode != 0 or found is None:
            said = [line for line in (done.stderr or done.stdout).strip().splitlines()
                    if not line.startswith("WARNING: Location")]
            raise TargetUnsupported(
                f"no {distribution} {version} wheel for {self.arch.machine} (linux-"
                f"{self.arch.machine}: {', '.join(self.arch.wheel_platforms)}), which the "
                f"native {distribution} runner for that CPU is built from; pip download "
                f"said: {' '.join(said[-3:]) or f'exit code {done.returncode}'}")
        return found

    def _in_folder(self, distribution: str, version: str) -> Path | None:
        stem = re.sub(r"[-_.]+", "_", distribution).lower()
        for wheel in sorted(self.wheels.glob(f"{stem}-{version}*-*.whl")):
            fields = wheel.name.removesuffix(".whl").split("-")
            # the same release, with or without a local label (torch-2.13.0+cpu)
            if fields[1].split("+")[0] == version and (
                    set(fields[-1].split(".")) & set(self.arch.wheel_platforms)):
                return wheel
        return None
