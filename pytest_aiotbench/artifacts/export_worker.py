"""Exports run in a worker process, so that a converter that exits, aborts or crashes takes
down one export, not the pytest session.

A converter is native code that may end its process: TFLite's writes its flatbuffer through
LLVM, which on a full disk prints ``LLVM ERROR: IO failure on output stream: No space left on
device`` and calls ``exit(1)``. In the worker that ends the worker: the export fails with the
worker's exit status and the tail of what it printed, and the next export starts a new
worker.

What crosses the process boundary is a ``Job``: where the network's builder is defined (its
module and file), the card's data, the seed and weights flag it was built with and the
fingerprint of its weights; where the framework adapter is defined; the example input and
calibration batches (numpy); and the paths to write. Not the model: a torch module pickles
by reference to its class, which a test module or conftest of the user's defines, and Keras
models not at all. The worker imports the builder's module from its file, as the session
did, rebuilds the model with the same seed, and checks its fingerprint against the
session's. Where they differ (a builder that draws from an unseeded generator), the session
hands the worker the weights themselves (``NeedWeights``), once per network. A network the
worker cannot rebuild at all (a builder defined inside a function) is exported in the
session's process, as before, and its notes say so.

One worker serves a session's process (each xdist worker has its own); it starts at the
first export that is not in the cache, keeps torch, TensorFlow and the converters imported
from one export to the next, and ends with the session (or when its socket closes). The
cache's file lock is held by the session around the whole round trip, so two sessions still
never export the same artifact twice.

The worker also finds an artifact's delegation facts (``Analyse``: which operators its
framework hands to its delegate), with the framework it already has imported: the cache asks
once per entry, after the export.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import faulthandler
import gc
import importlib
import importlib.util
import inspect
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from pytest_aiotbench.artifacts.delegation import Delegation
from pytest_aiotbench.frameworks.base import Framework, VariantUnsupported
from pytest_aiotbench.networks import implementations
from pytest_aiotbench.networks.card import NetworkCard
from pytest_aiotbench.runner.aiot_runner import peak_resident_bytes

#: Set to 1 to export in the session's process (no isolation): for comparison and debugging.
IN_PROCESS_ENV = "AIOTBENCH_EXPORT_IN_PROCESS"
#: Lines of the worker's output that an error message carries.
TAIL_LINES = 8
#: Free space under which a converter's death is blamed on a full file system, too.
FULL_DISK_BYTES = 1 << 20
#: The package's own modules are imported by name; anything else from its file.
PACKAGE = __name__.split(".")[0]


# ------------------------------------------------------------------------ messages
@dataclasses.dataclass(frozen=True)
class Source:
    """Where a function or class is defined: the worker imports ``module`` from ``file``."""

    module: str
    file: str | None
    qualname: str

    @classmethod
    def of(cls, obj: Any) -> Source:
        """A function's or class's source, its file read from its code: a conftest's module
        name may since name another conftest."""
        codes = [obj.__code__] if hasattr(obj, "__code__") else [
            value.__code__ for value in vars(obj).values() if hasattr(value, "__code__")]
        file = codes[0].co_filename if codes else getattr(
            sys.modules.get(obj.__module__), "__file__", None)
        return cls(obj.__module__, file, obj.__qualname__)

    def load(self) -> Any:
        """The object, its module imported here (from its file where the name alone does not
        find that file: a test module or a conftest outside any package)."""
        module = _import(self.module, self.file)
        found: Any = module
        for part in self.qualname.split("."):
            found = getattr(found, part)
        return found


@dataclasses.dataclass(frozen=True)
class NetworkSource:
    """What the worker needs to build the session's model again."""

    #: The card without its builder (a closure does not pickle).
    card: NetworkCard
    builder: Source
    #: Whether the card is the registry's own: the worker then takes the registry's card
    #: (with its wrappers) once the builder's module is imported.
    registered: bool
    pretrained: bool
    seed: int | None
    weights_sha256: str


@dataclasses.dataclass(frozen=True)
class Job:
    """One export: the fp32 artifact (``variant`` fp32) or a variant made from it."""

    network: NetworkSource
    framework: Source
    framework_name: str
    variant: str
    #: One batch-1 array per model input, in forward order.
    example: tuple[np.ndarray, ...]
    #: One such tuple per calibration sample.
    calibration: tuple[tuple[np.ndarray, ...], ...]
    fp32_artifact: str | None
    destination: str
    sys_path: tuple[str, ...]
    cwd: str
    #: The session's weights, when the worker's own rebuild did not reproduce them.
    weights_file: str | None = None


@dataclasses.dataclass(frozen=True)
class Analyse:
    """Find the delegation facts of the artifact at ``artifact`` with the framework's
    adapter for ``implementation``."""

    framework: Source
    framework_name: str
    implementation: str
    artifact: str
    sys_path: tuple[str, ...]
    cwd: str


@dataclasses.dataclass(frozen=True)
class Done:
    notes: list[str]
    #: The worker's peak resident memory over the job (VmHWM, reset as the job starts):
    #: what one export needs, the worker's own libraries included (None: not measured).
    peak_rss_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class Analysed:
    delegation: Delegation


@dataclasses.dataclass(frozen=True)
class Failed:
    """The converter raised: its exception, by name and text."""

    error_type: str
    message: str
    unsupported: bool = False  # a VariantUnsupported (or subclass): a skip, not an error


@dataclasses.dataclass(frozen=True)
class NeedWeights:
    reason: str


@dataclasses.dataclass(frozen=True)
class CannotRebuild:
    reason: str


Reply = Done | Analysed | Failed | NeedWeights | CannotRebuild


class WorkerDied(Exception):
    """The worker process ended during an export (exit, abort, crash, killed)."""

    def __init__(self, returncode: int, output: str):
        self.returncode, self.output = returncode, output
        if returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with status {returncode}"
        said = f": {output}" if output else " (it printed nothing)"
        super().__init__(f"the converter's process {how}{said}")


# ------------------------------------------------------------------------ session side
def job_for(network: Any, framework: Framework, variant: str, example: tuple[np.ndarray, ...],
            calibration: list[tuple[np.ndarray, ...]], fp32_artifact: Path | None,
            destination: Path) -> Job | None:
    """The job that exports in the worker, or None where the worker could not rebuild the
    network (a builder defined inside a function, not in a module)."""
    card: NetworkCard = network.card
    source = Source.of(_defining_function(card))
    registered = _registered(card)
    if source.module == "__main__":  # a script: importing it again would run it again
        return None
    if "<locals>" in source.qualname and not registered:
        return None
    if not source.module.startswith(f"{PACKAGE}.") and (
            source.file is None or not os.path.isfile(source.file)):
        return None
    return Job(
        network=NetworkSource(dataclasses.replace(card, builder=_unbuildable), source,
                              registered, network.weights == "pretrained",
                              getattr(network, "seed", None), network.weights_sha256),
        framework=Source.of(type(framework)), framework_name=framework.name,
        variant=variant, example=example, calibration=tuple(calibration),
        fp32_artifact=str(fp32_artifact) if fp32_artifact else None,
        destination=str(destination), sys_path=tuple(sys.path), cwd=os.getcwd())


def delegation(framework: Framework, implementation: str, artifact: Path) -> Delegation:
    """The artifact's delegation facts, found in the export worker (where the framework is
    imported already), or here where the worker cannot load the adapter (or
    AIOTBENCH_EXPORT_IN_PROCESS=1 asks for it). Raises what the analysis raised."""
    if not in_process():
        job = Analyse(Source.of(type(framework)), framework.name, implementation,
                      str(artifact), tuple(sys.path), os.getcwd())
        reply = shared_worker().analyse(job)
        if isinstance(reply, Analysed):
            return reply.delegation
        if isinstance(reply, Failed):
            raise RuntimeError(f"{reply.error_type}: {reply.message}")
    return analyse(framework, artifact)


def analyse(framework: Framework, artifact: Path) -> Delegation:
    """The analysis itself, wherever it runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frameworks' deprecation notices: noise here
        return framework.delegation(artifact)


def _unbuildable(pretrained: bool) -> Any:
    raise RuntimeError("this card was shipped without its builder")


def _registered(card: NetworkCard) -> bool:
    from pytest_aiotbench.networks import registry

    try:
        return registry.get(card.name, card.implementation) is card
    except LookupError:
        return False


def _defining_function(card: NetworkCard) -> Any:
    """The user's builder: ``register_network`` wraps a builder that takes no flag in a
    closure of its own; the function it wraps is the one whose module defines the model."""
    from pytest_aiotbench.networks import registry

    builder = inspect.unwrap(card.builder)
    if getattr(builder, "__module__", None) != registry.__name__:
        return builder
    for cell in getattr(builder, "__closure__", None) or ():
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if hasattr(inner, "__code__"):
            return inner
    return builder


class ExportWorker:
    """The session's side of the worker: starts it on need, sends jobs, notices its death."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._log: Path | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix="aiotbench-export-"))
        self._weights: dict[str, Path] = {}
        self.starts = 0

    def run(self, job: Job, model: Any) -> Reply:
        """The worker's answer to ``job``; the session's weights are sent along when the
        worker asks for them. Raises WorkerDied when the worker ends during the job."""
        reply = self._round_trip(job)
        if isinstance(reply, NeedWeights):
            reply = self._round_trip(dataclasses.replace(
                job, weights_file=str(self._weights_file(job.network, model))))
        return reply

    def analyse(self, job: Analyse) -> Reply:
        """The worker's answer to ``job``. Raises WorkerDied when the worker ends during
        it."""
        return self._round_trip(job)

    def _weights_file(self, network: NetworkSource, model: Any) -> Path:
        if network.weights_sha256 not in self._weights:
            path = self._scratch / f"weights-{network.weights_sha256[:24]}"
            save_weights(network.card.implementation, model, path)
            self._weights[network.weights_sha256] = path
        return self._weights[network.weights_sha256]

    def _round_trip(self, job: Job | Analyse) -> Reply:
        try:
            payload = pickle.dumps(job)
        except Exception as exc:  # a card's field of the user's own making
            return CannotRebuild(f"its card does not pickle: {type(exc).__name__}: {exc}")
        for attempt in range(2):
            connection = self._started()
            offset = self._log_size()
            try:
                connection.send_bytes(payload)
            except OSError:  # it died while idle (killed, out of memory): start another
                self._reap()
                if attempt:
                    raise
                continue
            return self._answer(connection, offset)
        raise AssertionError("unreachable")

    def _answer(self, connection: Connection, offset: int) -> Reply:
        assert self._process is not None
        try:
            while True:
                if connection.poll(0.5):
                    return connection.recv()
                if self._process.poll() is not None:
                    if connection.poll(0):  # it answered, then ended
                        return connection.recv()
                    break
        except (EOFError, OSError):
            pass
        except BaseException:  # KeyboardInterrupt: the job is abandoned with its worker
            self._reap(kill=True)
            raise
        returncode = self._process.wait()
        output = tail(self._log_text(offset))
        self._reap()
        raise WorkerDied(returncode, output)

    def _started(self) -> Connection:
        if self._process is not None and self._process.poll() is None:
            assert self._connection is not None
            return self._connection
        self._reap()
        ours, theirs = socket.socketpair()
        self._log = self._scratch / f"worker-{self.starts}.log"
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONUNBUFFERED": "1",  # nothing said is lost to an exit
               "PYTHONPATH": os.pathsep.join([package_root, *filter(None, os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep))])}
        if _THREADS is not None:  # torch (OpenMP) and TensorFlow read these as they start
            env.update(OMP_NUM_THREADS=str(_THREADS), TF_NUM_INTRAOP_THREADS=str(_THREADS),
                       TF_NUM_INTEROP_THREADS="1")
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(theirs.fileno(),),
                env=env, close_fds=True)
        theirs.close()
        self._connection = Connection(ours.detach())
        self.starts += 1
        return self._connection

    def _log_size(self) -> int:
        try:
            return self._log.stat().st_size if self._log else 0
        except OSError:
            return 0

    def _log_text(self, offset: int) -> str:
        if self._log is None:
            return ""
        try:
            with open(self._log, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _reap(self, kill: bool = False) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            if kill or self._process.poll() is None:
                with contextlib.suppress(OSError):
                    self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=30)
            self._process = None

    def close(self) -> None:
        """End the worker (it also ends by itself when the session's end of its socket
        closes) and remove its scratch files."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self._scratch, ignore_errors=True)


#: The worker's command: ``main`` imported from this module by its name (run as
#: ``__main__``, its messages' classes would not be the session's).
_LAUNCH = f"import sys; from {__name__} import main; sys.exit(main(sys.argv[1:]))"

#: The threads each export worker started from now on may use (None: the converters' own
#: defaults, every core): set by the export pool, so that its workers share the cores.
_THREADS: int | None = None


def share_cores(workers: int) -> None:
    """Workers started from now on use this process's cores once between ``workers`` of
    them (converters that each take every core slow each other down)."""
    global _THREADS
    _THREADS = max(1, len(os.sched_getaffinity(0)) // workers)


#: The workers by (process, thread): each export pool thread drives a worker of its own.
_WORKERS: dict[tuple[int, int], ExportWorker] = {}


def shared_worker() -> ExportWorker:
    """This thread's worker (a forked child gets its own, never its parent's)."""
    key = (os.getpid(), threading.get_ident())
    if key not in _WORKERS:
        _WORKERS[key] = worker = ExportWorker()
        atexit.register(worker.close)
    return _WORKERS[key]


def in_process() -> bool:
    return os.environ.get(IN_PROCESS_ENV, "") not in ("", "0")


def tail(output: str, lines: int = TAIL_LINES) -> str:
    """What the converter said before its process ended, one line per ' | ': its error lines
    and its last lines; a native stack trace left out, Python's fault handler's cut to its
    innermost frames."""
    said: list[str] = []
    crash: list[str] = []
    current_thread = False
    for line in output.splitlines():
        text = line.strip()
        if not text or _NOISE.match(text):
            continue
        if text.startswith("Fatal Python error"):
            crash = [text]
        elif not crash:
            said.append(text)
        elif text.startswith(("Current thread", "Thread 0x")):
            current_thread = text.startswith("Current thread")
        elif current_thread and text.startswith('File "') and len(crash) < 3:
            crash.append(text)
    errors = [i for i, text in enumerate(said) if _ERROR.search(text)]
    keep = sorted({*errors[-(lines // 2):], *range(max(0, len(said) - lines // 2), len(said))})
    return " | ".join([*(said[i] for i in keep), *crash])


#: A C++ stack frame, a glog info line, absl's note about its own logging, TensorFlow's
#: search for a GPU.
_NOISE = re.compile(r"frame #\d+:|<omitting python frames>|[IW]\d{4} \d\d:|WARNING: All log "
                    r"messages before absl|E\d{4} \d\d:.*cuInit")
_ERROR = re.compile(r"(?i)error|fatal|terminate called|what\(\)|exception|errno|no space|"
                    r"abort|segmentation")


def full_disk_hint(destination: Path) -> str:
    """Whether the artifact was written to a full file system: a converter's own words for
    it may not say so (torch's zip writer aborts with 'unexpected pos')."""
    try:
        free = shutil.disk_usage(destination.parent).free
    except OSError:
        return ""
    if free >= FULL_DISK_BYTES:
        return ""
    return (f"; the file system it was writing to is full ({free} bytes free): "
            "No space left on device")


# ------------------------------------------------------------------------ both sides
def perform(framework: Framework, model: Any, implementation: str, variant: str,
            example: tuple[np.ndarray, ...], calibration: list[tuple[np.ndarray, ...]],
            fp32_artifact: Path | None, destination: Path) -> list[str]:
    """The export itself, wherever it runs: the adapter writes ``destination``."""
    traced = implementations.get(implementation).example(example)
    with warnings.catch_warnings():
        # The exporters warn about their own deprecations on every call: noise here.
        warnings.simplefilter("ignore")
        if variant == "fp32":
            return framework.export(model, traced, destination)
        assert fp32_artifact is not None
        return framework.make_variant(variant, fp32_artifact, model, traced, calibration,
                                      destination)


def save_weights(implementation: str, model: Any, path: Path) -> None:
    if implementation == "torch":
        import torch

        torch.save(model.state_dict(), path)
    else:
        with open(path, "wb") as handle:
            np.savez(handle, *[np.asarray(weight) for weight in model.get_weights()])


def load_weights(implementation: str, model: Any, path: Path) -> None:
    if implementation == "torch":
        import torch

        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        with np.load(path) as stored:
            model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])


# ------------------------------------------------------------------------ worker side
def _import(module: str, file: str | None) -> Any:
    loaded = sys.modules.get(module)
    if loaded is not None and _same_file(getattr(loaded, "__file__", None), file):
        return loaded
    if module.startswith(f"{PACKAGE}.") or file is None:
        return importlib.import_module(module)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and _same_file(spec.origin, file):
        return importlib.import_module(module)
    # A conftest or a test module outside a package, whose name another file may also
    # have: import this file, under the name it had in the session.
    spec = importlib.util.spec_from_file_location(module, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {module} from {file}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        sys.modules.pop(module, None)
        raise
    return loaded


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class _Worker:
    """The worker's state: the last model it built, kept for the next export of it."""

    def __init__(self) -> None:
        self._model: tuple[tuple[str, str, str], Any] | None = None

    def handle(self, job: Job | Analyse) -> Reply:
        self._follow_session(job)
        if isinstance(job, Analyse):
            return self._analysed(job)
        try:
            framework = self._framework(job.framework, job.framework_name,
                                        job.network.card.implementation)
            model = self._model_for(job)
        except _Rebuild as outcome:
            return outcome.reply
        try:
            notes = perform(framework, model, job.network.card.implementation, job.variant,
                            job.example, list(job.calibration),
                            Path(job.fp32_artifact) if job.fp32_artifact else None,
                            Path(job.destination))
            return Done(list(notes))
        except VariantUnsupported as exc:
            return Failed(type(exc).__name__, str(exc), unsupported=True)
        except Exception as exc:
            return Failed(type(exc).__name__, str(exc))

    def _analysed(self, job: Analyse) -> Reply:
        try:
            framework = self._framework(job.framework, job.framework_name, job.implementation)
        except _Rebuild as outcome:
            return outcome.reply
        try:
            return Analysed(analyse(framework, Path(job.artifact)))
        except Exception as exc:
            return Failed(type(exc).__name__, str(exc))

    @staticmethod
    def _follow_session(job: Job | Analyse) -> None:
        """The session's import path and folder: a builder may import its neighbours or
        read a weights file by a relative path."""
        sys.path[:] = [*job.sys_path, *(p for p in sys.path if p not in job.sys_path)]
        with contextlib.suppress(OSError):
            os.chdir(job.cwd)

    @staticmethod
    def _framework(source: Source, name: str, implementation: str) -> Framework:
        from pytest_aiotbench import frameworks

        try:
            source.load()  # registers the adapter where a user's module defines it
            return frameworks.adapter(name, implementation)
        except Exception as exc:
            raise _Rebuild(CannotRebuild(
                f"the {name} adapter {source.module}.{source.qualname} could not be loaded "
                f"here: {type(exc).__name__}: {exc}")) from None

    def _model_for(self, job: Job) -> Any:
        network = job.network
        key = (network.card.name, network.card.implementation, network.weights_sha256)
        if self._model is not None and self._model[0] == key:
            return self._model[1]
        self._model = None
        gc.collect()
        kind = implementations.get(network.card.implementation)
        try:
            card = self._card(network)
        except Exception as exc:
            raise _Rebuild(CannotRebuild(
                f"its builder {network.builder.module}.{network.builder.qualname} could not "
                f"be loaded here: {type(exc).__name__}: {exc}")) from None
        try:
            if network.seed is not None:
                kind.seed(network.seed)
            model = card.build(network.pretrained if job.weights_file is None else False)
            if job.weights_file is not None:
                load_weights(network.card.implementation, model, Path(job.weights_file))
        except Exception as exc:
            if job.weights_file is None:
                raise _Rebuild(NeedWeights(f"{type(exc).__name__}: {exc}")) from None
            raise _Rebuild(CannotRebuild(f"{type(exc).__name__}: {exc}")) from None
        if kind.fingerprint(model) != network.weights_sha256:
            if job.weights_file is None:
                raise _Rebuild(NeedWeights("the rebuilt weights differ from the session's"))
            raise _Rebuild(CannotRebuild("the model built here differs from the session's "
                                         "even with its weights"))
        self._model = (key, model)
        return model

    @staticmethod
    def _card(network: NetworkSource) -> NetworkCard:
        from pytest_aiotbench.networks import registry

        if network.registered:  # the module registers it (a builder may be a closure)
            _import(network.builder.module, network.builder.file)
            card = registry.get(network.card.name, network.card.implementation)
            if card.origin == network.card.origin:
                return card
        return dataclasses.replace(network.card, builder=network.builder.load())


class _Rebuild(Exception):
    def __init__(self, reply: Reply):
        super().__init__(reply)
        self.reply = reply


def main(argv: list[str]) -> int:
    """Serve jobs on the socket whose descriptor is ``argv[0]`` until it closes."""
    connection = Connection(int(argv[0]))
    # Ctrl-C reaches the whole process group: the session decides what to do about it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()  # a crash prints where it happened before the process ends
    worker = _Worker()
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return 0
        except Exception as exc:  # a job that does not unpickle here
            connection.send(Failed(type(exc).__name__, f"the export worker could not read the "
                                   f"job: {exc}"))
            continue
        fresh_peak = isinstance(job, Job) and _reset_peak_memory()
        reply = worker.handle(job)
        if fresh_peak and isinstance(reply, Done):
            reply = dataclasses.replace(reply, peak_rss_bytes=peak_resident_bytes())
        sys.stdout.flush()
        sys.stderr.flush()
        connection.send(reply)


def _reset_peak_memory() -> bool:
    """Start this process's VmHWM afresh (Linux: 5 to /proc/self/clear_refs); whether it was."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
