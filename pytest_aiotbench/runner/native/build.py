"""Build the native runner: one executable per framework, its shared libraries beside it.

For the host, everything comes from the installed wheels (the frameworks' own shared
libraries and headers); for a Linux board of another CPU, from that CPU's wheels of the same
releases, with the GNU cross compiler (``wheels.py``, ``targets.py``); for Android, from the
libraries the user points at, with the NDK's toolchain file, or, without an NDK (the loader
route), the Linux build of the phone's CPU with the glibc it was linked against, started
through that glibc's own loader (``with_own_glibc``). Each (target, framework) build
is cached like an artifact: keyed by the sources, the compiler, CMake and the libraries'
versions, under a lock, staged and renamed into place whole. A build folder is a bundle
ready to push:

    bin/aiot_runner_<framework>     the runner
    lib/<soname>                    every library of the framework it needs (not libc & co.)
    lib/ld-linux-<cpu>.so.*, libc   the loader route only: the C library and its loader
    manifest.json                   what is here, and how it was built (its C library)

The measuring core (everything but main.cpp and the backend) is compiled once per target
and linked by each backend of that target: it is its own cache entry, ``core-<target>-<key>``
(``lib/libaiot_core.a``, the ``protocol_fields.hpp`` it was compiled against,
``aiot_core.cmake``), keyed by its sources, the schema, the toolchain, the compiler, CMake,
nlohmann-json and whether it is a test build, and each backend's key holds the core's key.
Every backend is still configured and built in its own folder, so one fails alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pytest_aiotbench.artifacts.cache import ArtifactCache, sha256_file
from pytest_aiotbench.runner.native.elf import bundle_closure, dynamic_info, header
from pytest_aiotbench.runner.native.targets import (
    ANDROID_ABIS,
    LIBC_DEVICE,
    LIBC_NDK,
    LINUX_ARCHITECTURES,
    CrossCompile,
    LinuxCross,
    NativeBuildError,
    Target,
    TargetUnsupported,
    bundled_glibc,
    compiler_file,
    ndk_clang,
    ndk_stl_dir,
)
from pytest_aiotbench.runner.native.wheels import (
    WHEELS_ENV,
    PackageSite,
    Progress,
    WheelSite,
    host_version,
)
from pytest_aiotbench.runner.protocol import PROTOCOL_VERSION

NATIVE_DIR = Path(__file__).resolve().parent
#: What the core library (aiot_core) is compiled from: its key.
CORE_SOURCES = ("CMakeLists.txt", "cmake/core.cmake", "cmake/protocol.cmake",
                "cmake/nlohmann_json.cmake",
                "src/backend.hpp", "src/protocol_io.hpp", "src/protocol_io.cpp",
                "src/npy.hpp", "src/npy.cpp", "src/stats.hpp", "src/stats.cpp",
                "src/system.hpp", "src/system.cpp", "src/measure.hpp", "src/measure.cpp",
                "src/test_faults.hpp", "src/test_faults.cpp",
                # the protocol's one statement: CMake generates protocol_fields.hpp from it
                "../protocol_schema.json")
#: Every runner's own sources besides the core's and its backend's.
RUNNER_SOURCES = ("src/main.cpp",)
#: The core's library in its cache entry (what the cache hashes when it serves it).
CORE_LIBRARY = "lib/libaiot_core.a"
BUILD_TYPE = "Release"
#: The one script that fetches Debian packages into a private folder (no system install).
FETCH_DEBIAN_PACKAGE = NATIVE_DIR / "fetch_debian_package.sh"
#: Frameworks (comma list, or "all") whose runners the builder makes as test builds: the fault
#: injection (AIOT_RUNNER_FAULT) compiled in, cached under another key. For the tests of the
#: host's crash handling; never set in normal use, so a product binary has no fault switch.
TEST_FAULTS_ENV = "AIOTBENCH_NATIVE_TEST_FAULTS"
BUILD_COMMAND = "aiotbench-build-runner"



def backend_id(framework: str) -> str:
    return framework.replace("-", "_")


def executable_name(framework: str) -> str:
    return f"aiot_runner_{backend_id(framework)}"


# ------------------------------------------------------------ framework libraries
@dataclasses.dataclass(frozen=True)
class FrameworkLibraries:
    """What one backend's CMake file needs, and where the libraries to bundle live."""

    defines: dict[str, str]
    library_dirs: tuple[Path, ...]
    versions: dict[str, str]


@dataclasses.dataclass(frozen=True)
class _Backend:
    """Where one framework's native runner takes its libraries from: which wheel, which
    package folder in it, and how to find the files there."""

    distribution: str
    module: str
    find: Callable[[Path, str, Path], FrameworkLibraries]

    def libraries(self, site: PackageSite, cache_root: Path) -> FrameworkLibraries:
        return self.find(site.package_dir(self.module, self.distribution),
                         site.version(self.distribution), cache_root)


_FRAMEWORK_LIBRARIES: dict[str, _Backend] = {}


def framework_libraries(framework: str, distribution: str, module: str):
    """Register how to find ``framework``'s libraries and headers in ``module``, the package
    folder of its wheel ``distribution``: ``find(package_dir, version, cache_root)``."""

    def register(find: Callable[[Path, str, Path], FrameworkLibraries]):
        _FRAMEWORK_LIBRARIES[framework] = _Backend(distribution, module, find)
        return find

    return register


def frameworks_with_backends() -> list[str]:
    return list(_FRAMEWORK_LIBRARIES)


def _only(pattern: str, folder: Path, distribution: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise NativeBuildError(f"no {pattern} in {folder}: the {distribution} wheel is "
                               "expected to ship it")
    return found[-1]


@framework_libraries("onnxruntime", "onnxruntime", "onnxruntime")
def _onnxruntime(package: Path, version: str, cache_root: Path) -> FrameworkLibraries:
    capi = package / "capi"
    library = _only("libonnxruntime.so.*", capi, "onnxruntime")
    # The C API header is the same for every CPU: the host's copy serves all targets.
    include = os.environ.get("AIOTBENCH_ONNXRUNTIME_INCLUDE") or str(
        _fetch_onnxruntime_headers(cache_root / "onnxruntime-headers"))
    return FrameworkLibraries({"AIOT_ONNXRUNTIME_LIBRARY": str(library),
                               "AIOT_ONNXRUNTIME_INCLUDE_DIR": include},
                              (capi,), {"onnxruntime": version, "headers": include})


def _fetch_onnxruntime_headers(folder: Path) -> Path:
    """The wheel has no C API header: Debian's libonnxruntime-dev provides one (trixie, else
    sid; fetched once, without a system install). The C API is versioned, so a header older
    than the wheel's library is fine (the runner asks for the header's ORT_API_VERSION). Set
    AIOTBENCH_ONNXRUNTIME_INCLUDE to use another."""
    done = subprocess.run(["bash", str(FETCH_DEBIAN_PACKAGE), str(folder),
                           "onnxruntime-headers", "libonnxruntime-dev", "--suite", "trixie",
                           "--suite", "sid", "--find", "onnxruntime_c_api.h"],
                          capture_output=True, text=True, check=False, timeout=600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise NativeBuildError(
            "cannot get the ONNX Runtime C API header (onnxruntime_c_api.h), which the wheel "
            "does not ship; set AIOTBENCH_ONNXRUNTIME_INCLUDE to a folder holding it (the "
            "include/ folder of an onnxruntime release archive). Fetching Debian's "
            f"libonnxruntime-dev failed:\n{done.stderr.strip()[-1500:]}")
    return Path(lines[-1])


@framework_libraries("tflite", "ai-edge-litert", "ai_edge_litert")
def _litert(package: Path, version: str, cache_root: Path) -> FrameworkLibraries:
    library = _only("libLiteRt.so", package, "ai-edge-litert")
    return FrameworkLibraries({"AIOT_TFLITE_LIBRARY": str(library),
                               "AIOT_TFLITE_VERSION": version},
                              (package,), {"ai-edge-litert": version})


@framework_libraries("executorch", "executorch", "executorch")
def _executorch(package: Path, version: str, cache_root: Path) -> FrameworkLibraries:
    return FrameworkLibraries({"AIOT_EXECUTORCH_DIR": str(package),
                               "AIOT_EXECUTORCH_VERSION": version},
                              (package / "lib",), {"executorch": version})


@framework_libraries("pytorch-mobile", "torch", "torch")
def _torch(package: Path, version: str, cache_root: Path) -> FrameworkLibraries:
    import torch

    lib = package / "lib"
    # The host's torch says which C++ ABI its headers expect; another CPU's wheel of the
    # same release is built the same way.
    return FrameworkLibraries(
        {"AIOT_PYTORCH_MOBILE_INCLUDE_DIR": str(package / "include"),
         "AIOT_PYTORCH_MOBILE_LIBRARIES": f"{lib / 'libtorch_cpu.so'};{lib / 'libc10.so'}",
         "AIOT_PYTORCH_MOBILE_CXX11_ABI": str(int(torch._C._GLIBCXX_USE_CXX11_ABI))},
        (lib,), {"torch": version})


def _refuse_gpu_builds(libraries: FrameworkLibraries, distribution: str,
                       site: WheelSite) -> None:
    """A wheel built for NVIDIA GPUs (PyPI's aarch64 torch) links CUDA libraries that a
    board does not have: say so at build time, not as a missing library on the board."""
    linked = [Path(part) for value in libraries.defines.values() for part in value.split(";")
              if ".so" in Path(part).name]
    gpu = sorted({name for path in linked if path.is_file()
                  for name in dynamic_info(path).needed
                  if name.startswith(("libcupti", "libcudart", "libcuda.", "libnvrtc"))})
    if gpu:
        version = site.version(distribution)
        raise TargetUnsupported(
            f"the {distribution} {version} wheel for {site.arch.machine} is a CUDA build (it "
            f"needs {', '.join(gpu)}), which a board without NVIDIA's libraries cannot load; "
            f"put the CPU build's wheel ({distribution}-{version}+cpu-...-"
            f"{site.arch.wheel_platforms[0]}.whl) in the wheel folder ({site.wheels}, or "
            f"${WHEELS_ENV})")


def nlohmann_json_include() -> tuple[Path, str]:
    """The folder holding nlohmann/json.hpp (the nlohmann-json package's, header-only, so
    it serves every target) and the package's version."""
    spec = importlib.util.find_spec("nlohmann_json")
    if spec is None or not spec.submodule_search_locations:
        raise NativeBuildError("the nlohmann-json package is not installed (the native "
                               "runner's JSON library): pip install nlohmann-json")
    include = Path(next(iter(spec.submodule_search_locations))) / "include"
    if not (include / "nlohmann" / "json.hpp").is_file():
        raise NativeBuildError(f"{include} has no nlohmann/json.hpp: reinstall nlohmann-json")
    return include, host_version("nlohmann-json")


# ------------------------------------------------------------------------- builds
@dataclasses.dataclass(frozen=True)
class NativeRunner:
    """A built runner for one framework on one target, ready to push."""

    framework: str
    target: str
    executable: Path
    libraries: tuple[Path, ...]
    cache_key: str
    built: bool
    build_s: float
    compiler: str
    #: Where its C library comes from on the device: LIBC_DEVICE, LIBC_NDK or a bundled glibc.
    libc: str = LIBC_DEVICE
    #: The bundled dynamic loader that starts it (the loader route); None: the kernel starts
    #: it with the loader its ELF header names, the device's own.
    loader: Path | None = None

    @property
    def bytes(self) -> int:
        files = (self.executable, *self.libraries, *([self.loader] if self.loader else []))
        return sum(p.stat().st_size for p in files)

    def glibc_needed(self) -> tuple[int, int] | None:
        """The newest glibc release its files' symbol versions ask for (None: none)."""
        return max((needed for path in (self.executable, *self.libraries)
                    if (needed := dynamic_info(path).glibc_needed())), default=None)

    def to_json(self) -> dict[str, Any]:
        return {"framework": self.framework, "target": self.target, "libc": self.libc,
                "executable": str(self.executable),
                "loader": self.loader.name if self.loader else None,
                "libraries": [p.name for p in self.libraries], "bytes": self.bytes,
                "cache_key": self.cache_key, "built_this_session": self.built,
                "build_s": self.build_s, "compiler": self.compiler}


@dataclasses.dataclass(frozen=True)
class _Toolchain:
    """What one target's builds are configured with, shared by its core and its backends."""

    target: Target
    cmake: str
    compiler: str
    cross: CrossCompile | LinuxCross | None

    def key(self) -> dict[str, Any]:
        return {"target": self.target.name, "compiler": self.compiler,
                "cmake": _tool_version([self.cmake, "--version"]), "build_type": BUILD_TYPE,
                "toolchain": self.cross.toolchain_defines() if self.cross else {},
                "flags": {name: os.environ.get(name, "")
                          for name in ("CXX", "CXXFLAGS", "LDFLAGS")}}


def _sha256_of(names: Collection[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (NATIVE_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()


def sources_sha256(framework: str) -> str:
    """Everything one framework's runner is compiled from, the core's sources included."""
    bid = backend_id(framework)
    return _sha256_of((*CORE_SOURCES, *RUNNER_SOURCES, f"src/backend_{bid}.cpp",
                       f"cmake/{bid}.cmake"))


def core_sources_sha256() -> str:
    return _sha256_of(CORE_SOURCES)


def find_cmake() -> str:
    """The cmake of this environment (the PyPI package: >= 3.28, which ExecuTorch's
    CMake config needs), else the one on PATH."""
    beside = Path(sys.executable).parent / "cmake"
    found = str(beside) if beside.exists() else shutil.which("cmake")
    if found is None:
        raise NativeBuildError("no cmake found: pip install 'cmake>=3.28'")
    return found


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        raise NativeBuildError(f"cannot run {command[0]}: {exc}") from exc
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


class NativeBuilder:
    """Builds and caches native runners under ``<cache>/native``."""

    def __init__(self, cache_root: Path, progress: Progress = print, jobs: int | None = None,
                 test_faults: Collection[str] | None = None, wheels: Path | None = None):
        self.root = Path(cache_root) / "native"
        self.cache = ArtifactCache(self.root)
        #: Where other CPUs' wheels are looked for first and downloaded to.
        self.wheels = Path(wheels or os.environ.get(WHEELS_ENV) or self.root / "wheels")
        self.progress = progress
        self.jobs = jobs or len(os.sched_getaffinity(0))
        #: Frameworks built as test builds (AIOT_TEST_FAULTS), "all" for every one; by
        #: default as $AIOTBENCH_NATIVE_TEST_FAULTS says (normally: none).
        if test_faults is None:
            test_faults = [name.strip() for name in
                           os.environ.get(TEST_FAULTS_ENV, "").split(",") if name.strip()]
        self.test_faults = frozenset(test_faults)

    def is_test_build(self, framework: str) -> bool:
        return framework in self.test_faults or "all" in self.test_faults

    def build(self, framework: str, cross: CrossCompile | None = None,
              target: Target | None = None) -> NativeRunner:
        """The runner for ``framework``: for this host by default, for an Android ABI with
        ``cross`` (the NDK), for a Linux board of another CPU with its ``target``.

        Raises TargetUnsupported where this host cannot build for ``target``, and
        NativeBuildError where a build fails."""
        if framework not in _FRAMEWORK_LIBRARIES:
            raise NativeBuildError(f"the native runner has no {framework} backend; it has: "
                                   f"{', '.join(_FRAMEWORK_LIBRARIES)}")
        cmake = find_cmake()
        toolchain, libraries = self._plan(framework, cmake, cross, target)
        target = toolchain.target
        test_faults = self.is_test_build(framework)
        toolchain_key = toolchain.key()
        core_parts = self._core_parts(toolchain_key, test_faults)
        defines = dict(libraries.defines)
        if test_faults:
            defines["AIOT_TEST_FAULTS"] = "ON"
        libraries = dataclasses.replace(libraries, defines=defines)
        parts = {"framework": framework, **toolchain_key,
                 "protocol": PROTOCOL_VERSION, "sources": sources_sha256(framework),
                 "core": self.cache.key(core_parts),
                 "libraries": {**libraries.versions, "nlohmann-json": core_parts["nlohmann-json"]},
                 "defines": libraries.defines, "test_faults": test_faults}
        label = f"runner-{target.name}-{framework}" + ("-test-faults" if test_faults else "")
        started = time.perf_counter()

        def build_into(manifest: Path) -> list[str]:
            core = self._core(toolchain, core_parts, framework)
            self._compile(framework, toolchain, libraries, core, manifest.parent)
            return []

        return self._cached(
            label, parts, build_into, started,
            lambda runner: (f"built {runner.executable.name} for {target.name} in "
                            f"{runner.build_s:.1f} s ({len(runner.libraries)} libraries, "
                            f"{runner.bytes / 1e6:.1f} MB)"),
            lambda _label: self.progress(f"aiotbench: building the native {framework} runner "
                                         f"for {target.name} ..."))

    def _cached(self, label: str, parts: dict[str, Any], build_into: Callable[[Path], list[str]],
                started: float, built: Callable[[NativeRunner], str],
                on_build_start: Callable[[str], None] | None = None) -> NativeRunner:
        """A bundle from the cache, or made now by ``build_into`` (then ``built`` says so)."""
        entry = self.cache.get_or_build(label, parts, "manifest.json", build_into,
                                        on_build_start)
        runner = load_manifest(entry.path)
        if entry.built:
            runner = dataclasses.replace(runner, built=True,
                                         build_s=time.perf_counter() - started)
            self.progress(f"aiotbench: {built(runner)}")
        return runner

    def find(self, framework: str, target: Target) -> NativeRunner | None:
        """The newest cached build of the current sources for ``target`` (Android builds
        are made by the user with their own libraries, so only they know the full key)."""
        wanted = sources_sha256(framework)
        best: tuple[float, NativeRunner] | None = None
        for manifest in self.root.glob(f"runner-{target.name}-{framework}-*/manifest.json"):
            try:
                meta = json.loads((manifest.parent / "meta.json").read_text())
                runner = load_manifest(manifest)
            except (OSError, ValueError, KeyError):
                continue
            if meta["parts"].get("test_faults") or runner.loader is not None:
                continue  # a test build is never a device's product runner; nor the loader
                # route's bundle (it is made from the Linux build, on demand)
            if meta["parts"].get("sources") == wanted and (
                    best is None or meta["created"] > best[0]):
                best = (meta["created"], runner)
        return best[1] if best else None

    def with_own_glibc(self, runner: NativeRunner, target: Target) -> NativeRunner:
        """The loader route: ``runner`` (a Linux build) with the glibc its files need, taken
        from the sysroot of the compiler that linked it, for ``target``: the bundle is started
        through that glibc's loader, so it runs where no glibc of its own is found (an
        Android phone's bionic, a musl board, a board whose glibc is older than the build's).
        Cached as ``runner-<target>-<framework>-glibc``; the C library files are the same
        for every framework (the device's content-addressed push sends them once)."""
        compiler = self._compiler_for(Target.parse(runner.target))
        c_library, loader = _c_library_closure(runner, compiler)
        version = glibc_release(c_library["libc.so.6"])
        parts = {"route": "bundled-glibc", "framework": runner.framework,
                 "target": target.name, "runner": runner.cache_key,
                 "c_library": {name: sha256_file(path)
                               for name, path in sorted(c_library.items())}}
        label = f"runner-{target.name}-{runner.framework}-glibc"
        started = time.perf_counter()

        def build_into(manifest: Path) -> list[str]:
            bundle = manifest.parent
            (bundle / "bin").mkdir(parents=True)
            (bundle / "lib").mkdir()
            shutil.copy2(runner.executable, bundle / "bin" / runner.executable.name)
            for source in runner.libraries:
                shutil.copy2(source, bundle / "lib" / source.name)
            for name, source in c_library.items():
                shutil.copy2(source, bundle / "lib" / name)
            manifest.write_text(json.dumps({
                "framework": runner.framework, "target": target.name,
                "executable": f"bin/{runner.executable.name}",
                "libraries": [*(p.name for p in runner.libraries),
                              *sorted(name for name in c_library if name != loader)],
                "loader": f"lib/{loader}", "libc": bundled_glibc(version),
                "linux_build": runner.target, "compiler": runner.compiler,
                "protocol_version": PROTOCOL_VERSION}, indent=1))
            return []

        return self._cached(
            label, parts, build_into, started,
            lambda bundled: (f"bundled {runner.executable.name} for {target.name} with glibc "
                             f"{version} ({bundled.bytes / 1e6:.1f} MB, started through "
                             f"lib/{loader})"))

    @staticmethod
    def _compiler_for(target: Target) -> str:
        """The C++ compiler that builds for a Linux target (its sysroot has the C library the
        runner was linked against)."""
        if target == Target.host():
            return os.environ.get("CXX", "c++")
        arch = LINUX_ARCHITECTURES.get(target.abi)
        if arch is None:
            raise TargetUnsupported(f"no toolchain is known for {target.name}")
        return LinuxCross.find(arch).compiler

    def _plan(self, framework: str, cmake: str, android: CrossCompile | None,
              target: Target | None) -> tuple[_Toolchain, FrameworkLibraries]:
        """The toolchain of the build, and the framework's libraries for its target."""
        if android is not None:
            compiler = _tool_version([str(ndk_clang(android.ndk)), "--version"])
            return (_Toolchain(Target("android", android.abi), cmake, compiler, android),
                    _android_libraries(framework, android))
        host = Target.host()
        if target is None or target == host:
            compiler = _tool_version([os.environ.get("CXX", "c++"), "--version"])
            return (_Toolchain(host, cmake, compiler, None),
                    _FRAMEWORK_LIBRARIES[framework].libraries(PackageSite(), self.root))
        if target.os != "linux":
            raise TargetUnsupported(
                f"the {target.name} runner is built with the Android NDK and the framework's "
                f"Android libraries: `{BUILD_COMMAND} --framework {framework} --android-abi "
                f"{target.abi} --ndk NDK --define AIOT_..._LIBRARY=...` (README: Android)")
        arch = LINUX_ARCHITECTURES.get(target.abi)
        if arch is None:
            raise TargetUnsupported(
                f"no wheels are known for the CPU {target.abi!r} ({target.name}): the native "
                f"runner is cross-built for Linux on {', '.join(LINUX_ARCHITECTURES)}")
        site = WheelSite(arch, self.cache, self.wheels, self.progress)
        backend = _FRAMEWORK_LIBRARIES[framework]
        found = backend.libraries(site, self.root)  # a missing wheel before the compiler
        _refuse_gpu_builds(found, backend.distribution, site)
        cross = LinuxCross.find(arch)
        libraries = dataclasses.replace(
            found, library_dirs=(*found.library_dirs, *site.library_dirs()))
        return (_Toolchain(target, cmake, _tool_version([cross.compiler, "--version"]), cross),
                libraries)

    @staticmethod
    def _core_parts(toolchain_key: dict[str, Any], test_faults: bool) -> dict[str, Any]:
        """The core's cache key: what goes into libaiot_core.a."""
        json_include, json_version = nlohmann_json_include()
        return {"core": True, **toolchain_key, "protocol": PROTOCOL_VERSION,
                "sources": core_sources_sha256(), "nlohmann-json": json_version,
                "nlohmann-json-include": str(json_include), "test_faults": test_faults}

    def _core(self, toolchain: _Toolchain, parts: dict[str, Any], framework: str) -> Path:
        """The installed core for this target (built once, then taken from the cache by every
        backend): the folder to pass as AIOT_CORE_DIR."""
        name = toolchain.target.name
        label = f"core-{name}" + ("-test-faults" if parts["test_faults"] else "")

        def build_into(library: Path) -> list[str]:
            defines = {"AIOT_NLOHMANN_JSON_INCLUDE_DIR": parts["nlohmann-json-include"]}
            if parts["test_faults"]:
                defines["AIOT_TEST_FAULTS"] = "ON"
            prefix = library.parent.parent
            with tempfile.TemporaryDirectory(prefix="aiotbench-native-core-") as scratch:
                build_dir = Path(scratch)
                what = f"the native runners' core for {name} (needed by {framework})"
                self._run("configure", self._configure(toolchain, build_dir, "core", defines),
                          what, "core")
                self._run("compile", [toolchain.cmake, "--build", str(build_dir),
                                      "--parallel", str(self.jobs)], what, "core")
                self._run("install", [toolchain.cmake, "--install", str(build_dir),
                                      "--prefix", str(prefix)], what, "core")
            return []

        started = time.perf_counter()
        entry = self.cache.get_or_build(
            label, parts, CORE_LIBRARY, build_into,
            lambda _label: self.progress(f"aiotbench: building the native runners' core for "
                                         f"{name} ..."))
        if entry.built:
            self.progress(f"aiotbench: built the native runners' core for {name} in "
                          f"{time.perf_counter() - started:.1f} s")
        return entry.path.parent.parent

    @staticmethod
    def _configure(toolchain: _Toolchain, build_dir: Path, backend: str,
                   defines: dict[str, str]) -> list[str]:
        configure = [toolchain.cmake, "-S", str(NATIVE_DIR), "-B", str(build_dir),
                     f"-DAIOT_BACKEND={backend}", f"-DCMAKE_BUILD_TYPE={BUILD_TYPE}"]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        if toolchain.cross is not None:
            defines = {**toolchain.cross.toolchain_defines(), **defines}
        return configure + [f"-D{name}={value}" for name, value in defines.items()]

    def _compile(self, framework: str, toolchain: _Toolchain, libraries: FrameworkLibraries,
                 core: Path, bundle: Path) -> None:
        cross = toolchain.cross
        with tempfile.TemporaryDirectory(prefix="aiotbench-native-") as scratch:
            build_dir = Path(scratch)
            what = f"the native {framework} runner"
            # The JSON library too: a backend may read its framework's own JSON (ORT's
            # profiling trace).
            self._run("configure", self._configure(
                toolchain, build_dir, framework,
                {**libraries.defines, "AIOT_CORE_DIR": str(core),
                 "AIOT_NLOHMANN_JSON_INCLUDE_DIR": str(nlohmann_json_include()[0])}),
                what, framework)
            self._run("compile", [toolchain.cmake, "--build", str(build_dir), "--parallel",
                                  str(self.jobs)], what, framework)
            built = build_dir / executable_name(framework)
            (bundle / "bin").mkdir(parents=True)
            (bundle / "lib").mkdir()
            shutil.copy2(built, bundle / "bin" / built.name)
        search = list(libraries.library_dirs)
        if isinstance(cross, CrossCompile):
            search.append(ndk_stl_dir(cross))
        bundled = []
        with tempfile.TemporaryDirectory(prefix="aiotbench-runtime-") as runtime:
            if isinstance(cross, LinuxCross):
                search.append(cross.runtime_folder(Path(runtime)))
            for soname, source in sorted(bundle_closure(bundle / "bin" / built.name,
                                                        search).items()):
                shutil.copy2(source, bundle / "lib" / soname)
                bundled.append(soname)
        if cross is None:
            _check_describe(bundle, framework)
        manifest = {"framework": framework, "target": toolchain.target.name,
                    "executable": f"bin/{built.name}", "libraries": bundled,
                    "libc": LIBC_NDK if isinstance(cross, CrossCompile) else LIBC_DEVICE,
                    "compiler": toolchain.compiler, "protocol_version": PROTOCOL_VERSION}
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))

    def _run(self, step: str, command: list[str], what: str, tag: str) -> None:
        """Run a build step of ``what`` ("the native tflite runner"), passing its progress
        lines on under ``tag``; keep the output for errors."""
        output: list[str] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line.rstrip())
                if step == "compile" and re.match(r"\s*\[\s*\d+[%/]", line):
                    self.progress(f"aiotbench: {tag}: {line.strip()[:110]}")
        if process.returncode != 0:
            tail = "\n".join(output[-40:])
            raise NativeBuildError(f"{what} failed to {step} "
                                   f"(exit code {process.returncode}):\n{tail}")


def load_manifest(path: Path) -> NativeRunner:
    bundle = Path(path).parent
    manifest = json.loads(Path(path).read_text())
    meta = json.loads((bundle / "meta.json").read_text()) if (bundle / "meta.json").exists() \
        else {"key": "", "build_s": 0.0}
    target = manifest["target"]
    # Manifests written before the C library was recorded: an Android build was the NDK's.
    libc = manifest.get("libc") or (LIBC_NDK if target.startswith("android-") else LIBC_DEVICE)
    return NativeRunner(
        framework=manifest["framework"], target=target,
        executable=bundle / manifest["executable"],
        libraries=tuple(bundle / "lib" / name for name in manifest["libraries"]),
        cache_key=meta["key"], built=False, build_s=float(meta.get("build_s", 0.0)),
        compiler=manifest["compiler"], libc=libc,
        loader=bundle / manifest["loader"] if manifest.get("loader") else None)


def _c_library_closure(runner: NativeRunner, compiler: str) -> tuple[dict[str, Path], str]:
    """The C library files the runner's bundle leaves to the system (libc, libm, the loader,
    and libstdc++ where the build did not bundle it), found where ``compiler`` links them
    from, and the loader's file name."""
    interpreter = header(runner.executable).interpreter
    if interpreter is None:
        raise NativeBuildError(f"{runner.executable.name} has no dynamic loader (static): it "
                               "needs no C library bundled")
    loader = interpreter.rsplit("/", 1)[-1]
    bundled = {path.name for path in runner.libraries}
    pending = [loader, *(name for path in (runner.executable, *runner.libraries)
                         for name in dynamic_info(path).needed)]
    found: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in found or name in bundled:
            continue
        path = compiler_file(compiler, name)
        if path is None:
            raise NativeBuildError(
                f"{name}, which the native {runner.framework} runner needs, is not in the "
                f"sysroot of {compiler}: the loader route bundles the C library the runner "
                "was linked against (for linux-aarch64: Debian's libc6-arm64-cross, which "
                "g++-aarch64-linux-gnu brings)")
        found[name] = path
        pending.extend(dynamic_info(path).needed)
    if "libc.so.6" not in found:
        raise NativeBuildError(f"the native {runner.framework} runner names no libc.so.6: "
                               "not a glibc build, so the loader route cannot bundle its C "
                               "library")
    return found, loader


def glibc_release(libc: Path) -> str:
    """The glibc release of a libc.so.6, as its banner says it ('2.36')."""
    found = re.search(rb"release version (\d+\.\d+)", libc.read_bytes())
    if found is None:
        raise NativeBuildError(f"{libc} does not say its glibc release: not a glibc libc.so.6")
    return found.group(1).decode()


def _check_describe(bundle: Path, framework: str) -> None:
    """Start the fresh binary once with only its bundle: a library the bundle lacks, or a
    binary that speaks another protocol, fails the build, not a measurement later."""
    executable = bundle / "bin" / executable_name(framework)
    env = {**os.environ, "LD_LIBRARY_PATH": str(bundle / "lib")}
    done = subprocess.run([str(executable), "--describe"], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
    try:
        described = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise NativeBuildError(f"the freshly built {executable.name} does not start with "
                               f"its bundled libraries (exit code {done.returncode}):\n"
                               f"{done.stderr.strip()[-1500:]}") from None
    if described.get("protocol_version") != PROTOCOL_VERSION:
        raise NativeBuildError(f"{executable.name} speaks protocol "
                               f"{described.get('protocol_version')}, the host "
                               f"{PROTOCOL_VERSION}: its sources are out of date")


def _android_libraries(framework: str, cross: CrossCompile) -> FrameworkLibraries:
    """The user's defines for this backend (AIOT_<ID>_...); libraries are bundled from the
    folders of the files they name."""
    prefix = f"AIOT_{backend_id(framework).upper()}_"
    defines = {k: v for k, v in cross.defines.items() if k.startswith(prefix)}
    if not defines:
        raise NativeBuildError(
            f"no libraries given for {framework} on Android: pass its cache variables, e.g. "
            f"--define {prefix}LIBRARY=.../jni/{cross.abi}/lib....so (see "
            f"cmake/{backend_id(framework)}.cmake for the list)")
    dirs = {Path(part).parent for value in defines.values() for part in value.split(";")
            if Path(part).is_file()}
    versions = {name: hashlib.sha256(Path(part).read_bytes()).hexdigest()[:16]
                for value in defines.values() for part in value.split(";")
                for name in [Path(part).name] if Path(part).is_file()}
    return FrameworkLibraries(defines, tuple(sorted(dirs)), versions)


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog=BUILD_COMMAND,
        description="Build the native runner (one executable per framework) for this host "
                    "from the installed wheels, for a Linux board of another CPU from that "
                    "CPU's wheels of the same versions with a GNU cross compiler, or for "
                    "Android with the NDK.")
    parser.add_argument("--framework", default="",
                        help=f"comma list (default: all of {', '.join(_FRAMEWORK_LIBRARIES)})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="artifact cache (default: $AIOTBENCH_CACHE or ./models/cache)")
    parser.add_argument("--target", default=Target.host().name,
                        help="linux-<uname -m> of the board: linux-aarch64 cross-compiles "
                             f"with {LINUX_ARCHITECTURES['aarch64'].cross_compiler()}; "
                             "android-<ABI> of a phone: without --ndk, the linux build of its "
                             "CPU with the glibc it needs, started through that glibc's loader "
                             "(android-arm64-v8a: CPU kernels only, no vendor delegates) "
                             "(default: this host, %(default)s)")
    parser.add_argument("--wheels", type=Path, default=None,
                        help=f"folder of other CPUs' wheels, looked in before the index and "
                             f"where fetched ones are kept (default: ${WHEELS_ENV} or "
                             "CACHE/native/wheels)")
    parser.add_argument("--fetch-wheels", action="store_true",
                        help="only fetch the target's wheels into the wheel folder (to build "
                             "later offline, or to keep them as CI's wheelhouse)")
    parser.add_argument("--android-abi", choices=ANDROID_ABIS,
                        help="cross-compile for Android with the NDK (bionic; the way to "
                             "vendor delegates)")
    parser.add_argument("--ndk", type=Path, default=os.environ.get("ANDROID_NDK_HOME"),
                        help="the Android NDK's root folder (default: $ANDROID_NDK_HOME)")
    parser.add_argument("--android-api", type=int, default=24)
    parser.add_argument("--define", action="append", default=[], metavar="NAME=VALUE",
                        help="a backend's CMake cache variable, for Android builds "
                             "(AIOT_ONNXRUNTIME_LIBRARY=..., see cmake/*.cmake)")
    parser.add_argument("-j", "--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    wanted = [n.strip() for n in args.framework.split(",") if n.strip()] or list(
        _FRAMEWORK_LIBRARIES)
    unknown = [n for n in wanted if n not in _FRAMEWORK_LIBRARIES]
    if unknown:
        parser.error(f"unknown framework {', '.join(unknown)}; the native runner has: "
                     f"{', '.join(_FRAMEWORK_LIBRARIES)}")
    try:
        target = Target.parse(args.target)
    except ValueError as exc:
        parser.error(str(exc))
    if target.os == "android" and not args.android_abi and args.ndk is not None:
        args.android_abi = target.abi  # with an NDK: the bionic build
    cross = None
    if args.android_abi:
        if args.ndk is None:
            parser.error("--android-abi needs --ndk (or ANDROID_NDK_HOME)")
        defines = {}
        for item in args.define:
            name, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--define {item!r}: use NAME=VALUE")
            defines[name] = value
        cross = CrossCompile(args.android_abi, args.ndk, args.android_api, defines)
    cache = args.cache or Path(os.environ.get("AIOTBENCH_CACHE") or Path("models") / "cache")
    builder = NativeBuilder(cache, progress=lambda line: print(line, flush=True),
                            jobs=args.jobs, wheels=args.wheels)
    if args.fetch_wheels:
        return _fetch_wheels(builder, wanted, target)
    failed = 0
    for framework in wanted:
        try:
            if target.os == "android" and cross is None:  # no NDK: the loader route
                runner = builder.with_own_glibc(
                    builder.build(framework, target=target.linux()), target)
            else:
                runner = builder.build(framework, cross, target)
        except NativeBuildError as exc:
            failed += 1
            print(f"FAILED {framework}: {exc}", flush=True)
            continue
        state = "built" if runner.built else "cached"
        print(f"{state:6} {framework:15} {runner.executable} + {len(runner.libraries)} "
              f"libraries ({runner.bytes / 1e6:.1f} MB; C library: {runner.libc})", flush=True)
    if failed:
        print(f"{failed} of {len(wanted)} backends failed; the others are built", flush=True)
    return 1 if failed == len(wanted) else 0


def _fetch_wheels(builder: NativeBuilder, frameworks: list[str], target: Target) -> int:
    arch = LINUX_ARCHITECTURES.get(target.abi)
    if target.os != "linux" or arch is None:
        print(f"--fetch-wheels: {target.name} is not a Linux CPU with wheels (one of "
              f"{', '.join('linux-' + name for name in LINUX_ARCHITECTURES)})", flush=True)
        return 2
    site = WheelSite(arch, builder.cache, builder.wheels, builder.progress)
    failed = 0
    for framework in frameworks:
        distribution = _FRAMEWORK_LIBRARIES[framework].distribution
        try:
            wheel = site.wheel(distribution, site.version(distribution))
        except NativeBuildError as exc:
            failed += 1
            print(f"FAILED {framework}: {exc}", flush=True)
            continue
        print(f"wheel  {framework:15} {wheel}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
