"""Build the native runner: one executable per framework, its shared libraries beside it.

For the host, everything comes from the installed wheels (the frameworks' own shared
libraries and headers); for Android, from the libraries the user points at, with the NDK's
toolchain file. Each (target, framework) build is cached like an artifact: keyed by the
sources, the compiler, CMake and the libraries' versions, under a lock, staged and renamed
into place whole. A build folder is a bundle ready to push:

    bin/aiot_runner_<framework>     the runner
    lib/<soname>                    every library of the framework it needs (not libc & co.)
    manifest.json                   what is here, and how it was built

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
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pytest_aiotbench.artifacts.cache import ArtifactCache
from pytest_aiotbench.runner.native.elf import bundle_closure
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
#: Android ABIs the CMake project cross-compiles for (the NDK's names).
ANDROID_ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64")
BUILD_COMMAND = "aiotbench-build-runner"

Progress = Callable[[str], None]


class NativeBuildError(RuntimeError):
    """A backend could not be built (or has no build for a device): the reason, in full."""


def backend_id(framework: str) -> str:
    return framework.replace("-", "_")


def executable_name(framework: str) -> str:
    return f"aiot_runner_{backend_id(framework)}"


# --------------------------------------------------------------------------- targets
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
    def of_device(cls, facts: dict[str, Any]) -> Target:
        android = str(facts.get("os") or "").startswith("Android")
        abi = str(facts.get("abi") or facts.get("machine") or "unknown")
        return cls("android" if android else "linux", abi)


# ------------------------------------------------------------ framework libraries
@dataclasses.dataclass(frozen=True)
class FrameworkLibraries:
    """What one backend's CMake file needs, and where the libraries to bundle live."""

    defines: dict[str, str]
    library_dirs: tuple[Path, ...]
    versions: dict[str, str]


_HOST_LIBRARIES: dict[str, Callable[[Path], FrameworkLibraries]] = {}


def host_libraries(framework: str):
    """Register how to find ``framework``'s libraries and headers among the host's wheels."""

    def register(find: Callable[[Path], FrameworkLibraries]):
        _HOST_LIBRARIES[framework] = find
        return find

    return register


def frameworks_with_backends() -> list[str]:
    return list(_HOST_LIBRARIES)


def _package_dir(module: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise NativeBuildError(f"the {distribution} package is not installed: pip install "
                               f"{distribution}")
    return Path(next(iter(spec.submodule_search_locations)))


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _only(pattern: str, folder: Path, distribution: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise NativeBuildError(f"no {pattern} in {folder}: the {distribution} wheel is "
                               "expected to ship it")
    return found[-1]


@host_libraries("onnxruntime")
def _onnxruntime(cache_root: Path) -> FrameworkLibraries:
    capi = _package_dir("onnxruntime", "onnxruntime") / "capi"
    library = _only("libonnxruntime.so.*", capi, "onnxruntime")
    include = os.environ.get("AIOTBENCH_ONNXRUNTIME_INCLUDE") or str(
        _fetch_onnxruntime_headers(cache_root / "onnxruntime-headers"))
    return FrameworkLibraries({"AIOT_ONNXRUNTIME_LIBRARY": str(library),
                               "AIOT_ONNXRUNTIME_INCLUDE_DIR": include},
                              (capi,), {"onnxruntime": _version("onnxruntime"),
                                        "headers": include})


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


@host_libraries("tflite")
def _litert(cache_root: Path) -> FrameworkLibraries:
    package = _package_dir("ai_edge_litert", "ai-edge-litert")
    library = _only("libLiteRt.so", package, "ai-edge-litert")
    return FrameworkLibraries({"AIOT_TFLITE_LIBRARY": str(library),
                               "AIOT_TFLITE_VERSION": _version("ai-edge-litert")},
                              (package,), {"ai-edge-litert": _version("ai-edge-litert")})


@host_libraries("executorch")
def _executorch(cache_root: Path) -> FrameworkLibraries:
    package = _package_dir("executorch", "executorch")
    return FrameworkLibraries({"AIOT_EXECUTORCH_DIR": str(package),
                               "AIOT_EXECUTORCH_VERSION": _version("executorch")},
                              (package / "lib",), {"executorch": _version("executorch")})


@host_libraries("pytorch-mobile")
def _torch(cache_root: Path) -> FrameworkLibraries:
    package = _package_dir("torch", "torch")
    import torch

    lib = package / "lib"
    return FrameworkLibraries(
        {"AIOT_PYTORCH_MOBILE_INCLUDE_DIR": str(package / "include"),
         "AIOT_PYTORCH_MOBILE_LIBRARIES": f"{lib / 'libtorch_cpu.so'};{lib / 'libc10.so'}",
         "AIOT_PYTORCH_MOBILE_CXX11_ABI": str(int(torch._C._GLIBCXX_USE_CXX11_ABI))},
        (lib,), {"torch": _version("torch")})


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
    return include, _version("nlohmann-json")


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

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.executable, *self.libraries))

    def to_json(self) -> dict[str, Any]:
        return {"framework": self.framework, "target": self.target,
                "executable": str(self.executable),
                "libraries": [p.name for p in self.libraries], "bytes": self.bytes,
                "cache_key": self.cache_key, "built_this_session": self.built,
                "build_s": self.build_s, "compiler": self.compiler}


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
class _Toolchain:
    """What one target's builds are configured with, shared by its core and its backends."""

    target: Target
    cmake: str
    compiler: str
    cross: CrossCompile | None

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
                 test_faults: Collection[str] | None = None):
        self.root = Path(cache_root) / "native"
        self.cache = ArtifactCache(self.root)
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

    def build(self, framework: str, cross: CrossCompile | None = None) -> NativeRunner:
        if framework not in _HOST_LIBRARIES:
            raise NativeBuildError(f"the native runner has no {framework} backend; it has: "
                                   f"{', '.join(_HOST_LIBRARIES)}")
        cmake = find_cmake()
        if cross is None:
            target = Target.host()
            libraries = _HOST_LIBRARIES[framework](self.root)
            compiler_command = [os.environ.get("CXX", "c++"), "--version"]
        else:
            target = Target("android", cross.abi)
            libraries = _android_libraries(framework, cross)
            compiler_command = [str(_ndk_clang(cross.ndk)), "--version"]
        toolchain = _Toolchain(target, cmake, _tool_version(compiler_command), cross)
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

        entry = self.cache.get_or_build(
            label, parts, "manifest.json", build_into,
            lambda _label: self.progress(f"aiotbench: building the native {framework} runner "
                                         f"for {target.name} ..."))
        runner = load_manifest(entry.path)
        if entry.built:
            runner = dataclasses.replace(runner, built=True,
                                         build_s=time.perf_counter() - started)
            self.progress(f"aiotbench: built {runner.executable.name} for {target.name} in "
                          f"{runner.build_s:.1f} s ({len(runner.libraries)} libraries, "
                          f"{runner.bytes / 1e6:.1f} MB)")
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
            if meta["parts"].get("test_faults"):
                continue  # a test build is never a device's product runner
            if meta["parts"].get("sources") == wanted and (
                    best is None or meta["created"] > best[0]):
                best = (meta["created"], runner)
        return best[1] if best else None

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
            self._run("configure", self._configure(
                toolchain, build_dir, framework,
                {**libraries.defines, "AIOT_CORE_DIR": str(core)}), what, framework)
            self._run("compile", [toolchain.cmake, "--build", str(build_dir), "--parallel",
                                  str(self.jobs)], what, framework)
            built = build_dir / executable_name(framework)
            (bundle / "bin").mkdir(parents=True)
            (bundle / "lib").mkdir()
            shutil.copy2(built, bundle / "bin" / built.name)
        search = list(libraries.library_dirs)
        if cross is not None:
            search.append(_ndk_stl_dir(cross))
        bundled = []
        for soname, source in sorted(bundle_closure(bundle / "bin" / built.name,
                                                    search).items()):
            shutil.copy2(source, bundle / "lib" / soname)
            bundled.append(soname)
        if cross is None:
            _check_describe(bundle, framework)
        manifest = {"framework": framework, "target": toolchain.target.name,
                    "executable": f"bin/{built.name}", "libraries": bundled,
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
    return NativeRunner(
        framework=manifest["framework"], target=manifest["target"],
        executable=bundle / manifest["executable"],
        libraries=tuple(bundle / "lib" / name for name in manifest["libraries"]),
        cache_key=meta["key"], built=False, build_s=float(meta.get("build_s", 0.0)),
        compiler=manifest["compiler"])


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


# ----------------------------------------------------------------------- Android
def _ndk_clang(ndk: Path) -> Path:
    found = sorted((ndk / "toolchains" / "llvm" / "prebuilt").glob("*/bin/clang++"))
    if not found:
        raise NativeBuildError(f"{ndk} is not an Android NDK (no toolchains/llvm/prebuilt/*/"
                               "bin/clang++); pass --ndk with the NDK's root folder")
    return found[0]


_NDK_TRIPLES = {"arm64-v8a": "aarch64-linux-android", "armeabi-v7a": "arm-linux-androideabi",
                "x86_64": "x86_64-linux-android"}


def _ndk_stl_dir(cross: CrossCompile) -> Path:
    return (_ndk_clang(cross.ndk).parent.parent / "sysroot" / "usr" / "lib"
            / _NDK_TRIPLES[cross.abi])


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
                    "from the installed wheels, or for Android with the NDK.")
    parser.add_argument("--framework", default="",
                        help=f"comma list (default: all of {', '.join(_HOST_LIBRARIES)})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="artifact cache (default: $AIOTBENCH_CACHE or ./models/cache)")
    parser.add_argument("--android-abi", choices=ANDROID_ABIS,
                        help="cross-compile for Android with the NDK")
    parser.add_argument("--ndk", type=Path, default=os.environ.get("ANDROID_NDK_HOME"),
                        help="the Android NDK's root folder (default: $ANDROID_NDK_HOME)")
    parser.add_argument("--android-api", type=int, default=24)
    parser.add_argument("--define", action="append", default=[], metavar="NAME=VALUE",
                        help="a backend's CMake cache variable, for Android builds "
                             "(AIOT_ONNXRUNTIME_LIBRARY=..., see cmake/*.cmake)")
    parser.add_argument("-j", "--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    wanted = [n.strip() for n in args.framework.split(",") if n.strip()] or list(
        _HOST_LIBRARIES)
    unknown = [n for n in wanted if n not in _HOST_LIBRARIES]
    if unknown:
        parser.error(f"unknown framework {', '.join(unknown)}; the native runner has: "
                     f"{', '.join(_HOST_LIBRARIES)}")
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
                            jobs=args.jobs)
    failed = 0
    for framework in wanted:
        try:
            runner = builder.build(framework, cross)
        except NativeBuildError as exc:
            failed += 1
            print(f"FAILED {framework}: {exc}", flush=True)
            continue
        state = "built" if runner.built else "cached"
        print(f"{state:6} {framework:15} {runner.executable} + {len(runner.libraries)} "
              f"libraries ({runner.bytes / 1e6:.1f} MB)", flush=True)
    if failed:
        print(f"{failed} of {len(wanted)} backends failed; the others are built", flush=True)
    return 1 if failed == len(wanted) else 0


if __name__ == "__main__":
    sys.exit(main())
