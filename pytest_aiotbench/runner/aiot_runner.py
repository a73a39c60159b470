"""The on-device runner: load one artifact in one framework, time it, answer probes.

This file is copied to the device as it is and run there as a script:

    python3 aiot_runner.py < request.json

It reads a JSON request on stdin and writes one JSON result on stdout, as the runner
protocol says (``protocol.py`` holds the host's typed classes for both). It uses the standard
library, numpy and the one framework named in the request; it never imports pytest or the
plugin, so any board with Python and that framework can run it.

The runner owns the clock: every sample is taken here, on the device, around one inference
call, and the stopping rule (the confidence interval of the median) is applied here too, so
the number of round trips to the host does not depend on the model's speed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
import traceback

#: The runner protocol version this file implements. This file is pushed to a device alone
#: and cannot read protocol_schema.json, so it states the version its code implements; the
#: tests check it, and the keys it writes, against the schema (tests/test_runner_protocol.py).
PROTOCOL_VERSION = 7

#: An operator's ``delegate`` where the framework ran it with its own kernels, outside any
#: delegate (the schema's enum no_delegate; the tests check it).
NO_DELEGATE = "none"


# ---------------------------------------------------------------------------- statistics
def median_confidence_bounds(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """Ranks (0-based, inclusive) of the order statistics that bound the median."""
    return quantile_confidence_bounds(n, 0.5, confidence)


def quantile_confidence_bounds(n: int, quantile: float,
                               confidence: float = 0.95) -> tuple[int, int]:
    """Ranks (0-based, inclusive) of the order statistics that bound a quantile.

    Distribution-free: the number of samples below the true q-quantile is Binomial(n, q),
    so ranks n*q -+ z*sqrt(n*q*(1-q)) cover it with the given confidence (normal
    approximation of the binomial, good from n*q*(1-q) of a few on). No assumption on the
    latency distribution, which is skewed and often bimodal on devices.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    z = _normal_quantile(0.5 + confidence / 2)
    half_width = z * math.sqrt(n * quantile * (1 - quantile))
    lower = max(0, math.floor(n * quantile - half_width) - 1)
    upper = min(n - 1, math.ceil(n * quantile + half_width))
    return lower, upper


def median_relative_half_width(samples: list[float], confidence: float = 0.95) -> float:
    """Half the width of the median's confidence interval, as a fraction of the median."""
    ordered = sorted(samples)
    n = len(ordered)
    lower, upper = median_confidence_bounds(n, confidence)
    median = _median_of_sorted(ordered)
    if median <= 0:
        return math.inf
    return (ordered[upper] - ordered[lower]) / 2 / median


def _median_of_sorted(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, |err| < 1e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    if not 0 < p < 1:
        raise ValueError("p must lie in (0, 1)")
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - low:
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


# ------------------------------------------------------------------------------ backends
class Backend:
    """One framework's way to load an artifact and run one batch."""

    name = ""
    module = ""

    def load(self, path: str, threads: int, quiet: bool = False) -> None:
        raise NotImplementedError

    def infer(self, inputs):  # one numpy array per model input in, a list of outputs out
        raise NotImplementedError

    def output_names(self) -> list:
        """The artifact's names of its outputs, in the order infer() returns them."""
        return []

    def version(self) -> str:
        mod = sys.modules.get(self.module)
        return str(getattr(mod, "__version__", "unknown"))

    def notes(self) -> list[str]:
        return []

    #: Paired rounds switch between two loaded instances. Where idle threads spin-wait (ONNX
    #: Runtime's intra-op pool does), the idle side takes the cores the timed side needs: the
    #: rounds then time two fresh instances loaded with ``quiet=True``.
    spins_when_idle = False

    # Per-operator profiling, on an instance of its own after timing (the profiler's cost
    # never touches a timed sample): enable_profiling() before load(), then start_profile(),
    # the profiled infer() calls, and stop_profile() with (op_type, name, delegate, seconds)
    # records of every operator run since start_profile(), one per operator and inference or
    # already summed (the caller sums records of one operator either way).
    profile_source = ""

    def enable_profiling(self) -> str:
        """Why this backend cannot profile ("" where it can)."""
        return f"the Python runner's {self.name} backend has no per-operator profiler"

    def start_profile(self) -> None:
        pass

    def stop_profile(self) -> list[tuple[str, str, str, float]]:
        return []


class RecordsSinceLoad(Backend):
    """A backend whose profiler records every call from loading on (ONNX Runtime's session
    trace, ExecuTorch's ETDump): its profiling instance counts its calls, and stop_profile()
    leaves out the first ``warmup_calls``, made before start_profile()."""

    profiling = False
    warmup_calls = 0

    def enable_profiling(self) -> str:
        self.profiling = True
        infer = self.infer
        self.calls = 0

        def counted(inputs):
            self.calls += 1
            return infer(inputs)

        self.infer = counted
        return ""

    def start_profile(self) -> None:
        self.warmup_calls = self.calls


class TFLiteBackend(Backend):
    name = "tflite"
    module = "ai_edge_litert"

    def load(self, path: str, threads: int, quiet: bool = False) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # older boards ship the slim tflite_runtime wheel instead
            from tflite_runtime.interpreter import Interpreter
            self.module = "tflite_runtime"
        # The default op resolver applies the XNNPACK delegate on CPU.
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        # The graph's order, as the native runner's C API reads it (the signature sorts
        # its names: a dict's "out" and "aux" would swap).
        self.inputs = [(d["index"], d["dtype"]) for d in self.interpreter.get_input_details()]
        details = self.interpreter.get_output_details()
        self.outputs = [d["index"] for d in details]
        self.names = [d["name"] for d in details]

    def infer(self, inputs):
        check_input_count(len(inputs), len(self.inputs))
        for (index, dtype), values in zip(self.inputs, inputs, strict=True):
            # litert-torch makes int64 ids int32: fed as the file declares them
            self.interpreter.set_tensor(index, values if values.dtype == dtype
                                        else values.astype(dtype))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index) for index in self.outputs]

    def output_names(self) -> list:
        return list(self.names)

    def enable_profiling(self) -> str:
        return ("LiteRT's Python Interpreter has no per-operator profiler (its C API's profiler "
                "is the native runner's: --aiot-runner=native)")

    def version(self) -> str:
        try:
            from importlib.metadata import version
            package = "ai-edge-litert" if self.module == "ai_edge_litert" else "tflite-runtime"
            return version(package)
        except Exception:
            return "unknown"


class OnnxRuntimeBackend(RecordsSinceLoad):
    name = "onnxruntime"
    module = "onnxruntime"
    spins_when_idle = True

    def load(self, path: str, threads: int, quiet: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if quiet:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.profiling:
            import tempfile
            self.trace_dir = tempfile.mkdtemp(prefix="aiotbench-ort-profile-")
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(self.trace_dir, "trace")
            self.profile_source = f"onnxruntime {ort.__version__} session profiling"
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [(one.name, ORT_TYPES.get(one.type)) for one in self.session.get_inputs()]

    def infer(self, inputs):
        check_input_count(len(inputs), len(self.inputs))
        return self.session.run(None, {
            name: values if dtype is None or values.dtype == dtype else values.astype(dtype)
            for (name, dtype), values in zip(self.inputs, inputs, strict=True)})

    def output_names(self) -> list:
        return [one.name for one in self.session.get_outputs()]

    def stop_profile(self) -> list[tuple[str, str, str, float]]:
        """The session's trace: one ``Node`` event per kernel run (``<node>_kernel_time``,
        with the op type and the execution provider), one ``model_run`` per call; the events
        of the warm-up calls (the first model_runs) are left out."""
        import shutil

        try:
            with open(self.session.end_profiling()) as handle:
                events = json.load(handle)
        finally:
            shutil.rmtree(self.trace_dir, ignore_errors=True)
        runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                      if e.get("cat") == "Session" and e.get("name") == "model_run")
        profiled = runs[self.warmup_calls:]
        if not profiled:
            return []
        begin = profiled[0][0]
        suffix = "_kernel_time"
        return [(e["args"]["op_name"], e["name"][:-len(suffix)],
                 e["args"].get("provider", NO_DELEGATE), e["dur"] / 1e6)
                for e in events
                if e.get("cat") == "Node" and e.get("name", "").endswith(suffix)
                and e["ts"] >= begin]


class PyTorchMobileBackend(Backend):
    name = "pytorch-mobile"
    module = "torch"

    def load(self, path: str, threads: int, quiet: bool = False) -> None:
        import torch
        from torch.jit.mobile import _load_for_lite_interpreter

        torch.set_num_threads(threads)
        self.torch = torch
        self.module_ = _load_for_lite_interpreter(path)

    def infer(self, inputs):
        with self.torch.inference_mode():
            answer = self.module_(*(self.torch.from_numpy(values) for values in inputs))
        named = flattened(answer)
        if not self.names:  # a lite module declares no outputs: named from the first answer
            self.names = tuple(name for name, _ in named)
        return [tensor.numpy() for _, tensor in named]

    names: tuple = ()

    def output_names(self) -> list:
        return list(self.names)

    #: Marks each profiled inference, so that operators are numbered within one.
    INFERENCE_MARK = "aiotbench::inference"

    def enable_profiling(self) -> str:
        infer = self.infer

        def marked(inputs):
            from torch.autograd.profiler import record_function
            with record_function(self.INFERENCE_MARK):
                return infer(inputs)

        self.infer = marked
        return ""

    def start_profile(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.profile_source = f"torch {self.torch.__version__} profiler (self times)"
        self.profiler = profile(activities=[ProfilerActivity.CPU])
        self.profiler.__enter__()

    def stop_profile(self) -> list[tuple[str, str, str, float]]:
        """Self times, so that nothing counts twice: each op's own time is booked to the op
        that spent it (aten::_slow_conv2d_forward, aten::add_, ...) under the name of the
        inference's top-level op it ran in and that op's position (aten::conv2d#3), as the
        native runner does."""
        self.profiler.__exit__(None, None, None)
        records = []
        for inference in self.profiler.events():
            if inference.name != self.INFERENCE_MARK:
                continue
            for position, top in enumerate(inference.cpu_children):
                name = f"{top.name}#{position}"
                pending = [top]
                while pending:
                    event = pending.pop()
                    pending.extend(event.cpu_children)
                    delegate = "XNNPACK" if event.name.startswith("prepacked::") else NO_DELEGATE
                    records.append((event.name, name, delegate, event.self_cpu_time_total / 1e6))
        return records


def _executorch_runtime():
    """ExecuTorch's runtime modules, without its compiler: the pybindings import
    ``executorch.exir._warnings`` for one warning class, and ``executorch.exir``'s own
    ``__init__`` imports the whole compiler (torch._dynamo, inductor, sympy), 7 s before the
    first inference on a 2-core host. A bare package stands in for ``executorch.exir`` while
    they load, so only that submodule runs; it is dropped after, so that a later
    ``import executorch.exir`` (the profiler's Inspector) gets the real package."""
    import importlib.util
    import types

    bare = None
    if "executorch.exir" not in sys.modules:
        found = importlib.util.find_spec("executorch.exir")  # locates it, runs nothing
        if found is not None and found.submodule_search_locations:
            bare = types.ModuleType("executorch.exir")
            bare.__path__ = list(found.submodule_search_locations)
            sys.modules["executorch.exir"] = bare
    try:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime
    except ImportError:
        if bare is None:
            raise
        # An ExecuTorch whose runtime wants more of exir than its warnings: the slow way.
        del sys.modules["executorch.exir"]
        bare = None
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime
    finally:
        if bare is not None and sys.modules.get("executorch.exir") is bare:
            del sys.modules["executorch.exir"]
    return portable_lib, Runtime


class ExecuTorchBackend(RecordsSinceLoad):
    name = "executorch"
    module = "executorch"

    def load(self, path: str, threads: int, quiet: bool = False) -> None:
        import torch

        portable_lib, Runtime = _executorch_runtime()

        # XNNPACK's threadpool is process-wide; size it before the method is loaded.
        portable_lib._unsafe_reset_threadpool(threads)
        self.torch = torch
        if self.profiling:  # the pybindings' module is the one that can record an ETDump
            self.module_ = portable_lib._load_for_executorch(path, enable_etdump=True,
                                                             debug_buffer_size=0)
            self.forward = self.module_.forward
            return
        self.forward = Runtime.get().load_program(path).load_method("forward").execute

    def infer(self, inputs):
        answer = self.forward([self.torch.from_numpy(values) for values in inputs])
        self.count = len(answer)
        return [tensor.numpy() for tensor in answer]

    count = 0

    def output_names(self) -> list:
        return (["output"] if self.count == 1 else
                [f"output_{index}" for index in range(self.count)])

    #: ETDump events that wrap others (the whole call, a delegate call, a kernel call):
    #: summing them with what they wrap would count it twice.
    WRAPPERS = ("Method::execute", "DELEGATE_CALL", "OPERATOR_CALL")

    def stop_profile(self) -> list[tuple[str, str, str, float]]:
        """The ETDump through ExecuTorch's Inspector (no ETRecord needed): per inference, one
        event per XNNPACK node inside the delegate and one per kernel the program calls
        itself (``native_call_<op>.out``, outside the delegate)."""
        import re
        import shutil
        import tempfile

        from executorch.devtools import Inspector

        self.profile_source = f"ExecuTorch {self.version()} ETDump (Inspector)"
        folder = tempfile.mkdtemp(prefix="aiotbench-etdump-")
        try:
            path = os.path.join(folder, "profile.etdp")
            self.module_.write_etdump_result_to_file(path)
            blocks = Inspector(etdump_path=path).event_blocks
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        records = []
        for block in blocks:
            if block.name != "Execute":
                continue
            for position, event in enumerate(block.events):
                if event.name in self.WRAPPERS or event.perf_data is None:
                    continue
                kernel = re.fullmatch(r"native_call_(\w+?)(\.\w+)?", event.name)
                if event.is_delegated_op:
                    # This project lowers ExecuTorch programs to XNNPACK only; the ETDump
                    # names the backend only with an ETRecord.
                    delegate = event.delegate_backend_name or "XNNPACK"
                    # XNNPACK numbers its nodes per delegated subgraph: the position in the
                    # inference tells apart the nodes of different subgraphs.
                    op_type = re.sub(r" #\d+$", "", event.name)
                else:
                    delegate = NO_DELEGATE
                    op_type = f"aten::{kernel.group(1)}" if kernel else event.name
                name = f"{op_type}#{position}"
                for ms in event.perf_data.raw[self.warmup_calls:]:
                    records.append((op_type, name, delegate, ms / 1e3))
        return records

    def version(self) -> str:
        try:
            from importlib.metadata import version
            return version("executorch")
        except Exception:
            return "unknown"


BACKENDS = {cls.name: cls for cls in (TFLiteBackend, OnnxRuntimeBackend,
                                      PyTorchMobileBackend, ExecuTorchBackend)}

#: ONNX's element types by the names ONNX Runtime's Python API gives them.
ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
             "tensor(bool)": "bool"}


def check_input_count(given: int, declared: int) -> None:
    if given != declared:
        raise RunnerError("inputs", f"the request gives {given} inputs; the artifact takes "
                                    f"{declared}")


def flattened(answer, name: str = "") -> list:
    """(name, tensor) of every output in a TorchScript answer: a tuple or list in order, a
    dict in its order, named as the host names the fp32 model's outputs."""
    if isinstance(answer, dict):
        parts = [(str(key), value) for key, value in answer.items()]
    elif isinstance(answer, (tuple, list)):
        parts = [(f"output_{index}", value) for index, value in enumerate(answer)]
    else:
        return [(name or "output", answer)]
    named = []
    for part, value in parts:
        named.extend(flattened(value, f"{name}.{part}" if name else part))
    return named


# ------------------------------------------------------------------- preprocessing
def preprocess(path: str, spec: dict):
    """JPEG file -> the network's input tensor, (1, C, H, W) or (1, H, W, C), float32.

    The one implementation the suite has: the host uses it for calibration and checks, the
    runner on the device for every labelled image, so accuracy differences between
    frameworks come from the frameworks. As torchvision's ImageNet transforms: shorter side
    resized to ``resize`` (bilinear, antialiased), center crop ``crop``; then as the card
    says (``networks.card.Preprocessing``): pixels scaled to [0, pixel_range] (1 for
    torchvision's and Keras's "torch" and "tf" modes, 255 for its "caffe" mode), channels
    in RGB or BGR order, normalised by mean/std, in NCHW or NHWC.
    """
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        image = _resized_and_cropped(image.convert("RGB"), spec, Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) * np.float32(
            spec.get("pixel_range", 1.0) / 255.0)
    if spec.get("channel_order", "RGB") == "BGR":
        pixels = pixels[:, :, ::-1]
    pixels = (pixels - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    if spec.get("layout", "NCHW") == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels[None], dtype=np.float32)


def preprocess_mask(path: str, spec: dict):
    """A label mask (PNG, a class index per pixel) -> (H, W) int64, with the geometry
    ``preprocess`` gives its image (nearest neighbour: classes are not blended)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as mask:
        if mask.mode not in ("L", "P", "I"):
            raise OSError(f"{path} is a {mask.mode} image, not a mask of class indices "
                          "(8-bit grey or palette)")
        mask = _resized_and_cropped(mask, spec, Image.NEAREST)
        return np.asarray(mask, dtype=np.int64)


def _resized_and_cropped(image, spec: dict, resample):
    """Shorter side resized to ``resize``, then the centre ``crop`` x ``crop``."""
    width, height = image.size
    scale = spec["resize"] / min(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = image.resize(size, resample)
    crop = spec["crop"]
    left = round((size[0] - crop) / 2.0)
    top = round((size[1] - crop) / 2.0)
    return image.crop((left, top, left + crop, top + crop))


def labelled_pass(infer, load_image, count: int, clock, top_k: int = 5,
                  decoded_on_device: bool = True, class_map_axis=None) -> dict:
    """One pass over the labelled items, timing each end to end (``load_image``: decode and
    preprocess a JPEG, or read preprocessed tensors; a list with one array per model input)
    and its inference alone."""
    import numpy as np

    end_to_end, inference, top, maps = [], [], [], []
    for index in range(count):
        t0 = clock()
        inputs = load_image(index)
        t1 = clock()
        logits = infer(inputs)[0]  # a classifier's scores: its first output
        t2 = clock()
        end_to_end.append(t2 - t0)
        inference.append(t2 - t1)
        if class_map_axis is not None:  # a segmentation's class per pixel
            top.append([])
            maps.append(np.asarray(logits).argmax(axis=class_map_axis).reshape(-1).tolist())
            continue
        flat = np.asarray(logits).reshape(-1)
        top.append([int(i) for i in np.argsort(-flat, kind="stable")[:top_k]])
    return {"end_to_end_s": end_to_end, "inference_s": inference, "top_k": top,
            "class_maps": maps if class_map_axis is not None else None,
            "decoded_on_device": decoded_on_device}


def peak_resident_bytes() -> int | None:
    """Peak resident set size of this process so far (VmHWM), None where there is no /proc."""
    return proc_kib_field("/proc/self/status", "VmHWM")


def proc_kib_field(path: str, key: str) -> int | None:
    """A ``key:  N kB`` line of a /proc file (status, meminfo), in bytes; None where the file
    or the line cannot be read."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# ------------------------------------------------------------------- peak compute
#: The probe: float32 matrix products of this size (large enough for BLAS to run near its
#: peak, small enough for a slow phone core to finish several in the window).
PEAK_PROBE_SIZE = 512
PEAK_PROBE_WINDOW_S = 0.2
PEAK_PROBE_FLAG = "--peak-probe"


def peak_compute(thread_counts: list[int]) -> dict:
    """The device's peak compute per thread count (GFLOP/s), measured in a child process
    whose BLAS runs one thread per caller: each of N Python threads multiplies its own
    matrices (numpy releases the GIL there), so N threads use N cores. A child, because
    BLAS reads its thread count only at import, and this process has imported numpy."""
    one_thread = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                         "MKL_NUM_THREADS")}
    command = [sys.executable, os.path.abspath(__file__), PEAK_PROBE_FLAG,
               ",".join(str(count) for count in thread_counts)]
    try:
        done = subprocess.run(command, env={**os.environ, **one_thread}, capture_output=True,
                              text=True, timeout=60, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        return {"measured": False, "gflops_by_threads": {},
                "method": f"the probe failed: {type(exc).__name__}: {exc} {detail[-300:]}"}
    return {"measured": True, "gflops_by_threads": measured["gflops_by_threads"],
            "method": measured["method"]}


def _probe_peak(thread_counts: list[int]) -> dict:
    """In the probe's child: matrix products on N threads for a short window per count."""
    import numpy as np

    gflops = {str(count): _matmul_gflops(np, count) for count in thread_counts}
    return {"gflops_by_threads": gflops,
            "method": f"numpy {np.__version__} float32 matmul {PEAK_PROBE_SIZE}x"
                      f"{PEAK_PROBE_SIZE}, one BLAS thread per worker thread, the fastest "
                      f"product of each in {PEAK_PROBE_WINDOW_S:g} s per thread count"}


def _matmul_gflops(np, count: int) -> float:
    """GFLOP/s of ``count`` threads each multiplying its own matrices for the window, each
    thread at its fastest product: a peak is what the cores can do, and a busy moment of a
    shared device only slows some products (the mean over the window fell below what the
    frameworks' own kernels reached on this machine)."""
    size = PEAK_PROBE_SIZE
    rng = np.random.default_rng(0)
    pairs = [(rng.random((size, size), np.float32), rng.random((size, size), np.float32))
             for _ in range(count)]
    fastest = [float("inf")] * count
    start = threading.Barrier(count)

    def work(index: int) -> None:
        a, b = pairs[index]
        np.matmul(a, b)  # warm: BLAS buffers and pages before the clock starts
        start.wait()  # all threads multiply at once, as a workload's threads do
        deadline = time.perf_counter() + PEAK_PROBE_WINDOW_S
        while (began := time.perf_counter()) < deadline:
            np.matmul(a, b)
            fastest[index] = min(fastest[index], time.perf_counter() - began)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(2 * size**3 / seconds for seconds in fastest) / 1e9


# ------------------------------------------------------------------- thermal state
def thermal_state() -> dict:
    """Temperatures (degrees C) of the thermal zones and current core frequencies (kHz).

    Read before and after timing so the host can flag a run during which the SoC throttled.
    Empty where the kernel exposes none (VMs, some boards).
    """
    zones: dict[str, float] = {}
    base = "/sys/class/thermal"
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if not entry.startswith("thermal_zone"):
            continue
        try:
            with open(os.path.join(base, entry, "temp")) as handle:
                milli = int(handle.read().strip())
            with open(os.path.join(base, entry, "type")) as handle:
                kind = handle.read().strip()
        except (OSError, ValueError):
            continue
        zones[f"{entry}:{kind}"] = milli / 1000.0
    freqs: dict[str, int] = {}
    cpu_base = "/sys/devices/system/cpu"
    for entry in sorted(os.listdir(cpu_base)) if os.path.isdir(cpu_base) else []:
        path = os.path.join(cpu_base, entry, "cpufreq", "scaling_cur_freq")
        if entry[3:].isdigit() and os.path.exists(path):
            try:
                with open(path) as handle:
                    freqs[entry] = int(handle.read().strip())
            except (OSError, ValueError):
                continue
    return {"temperatures_c": zones, "core_khz": freqs, "time": time.time()}


# ------------------------------------------------------------------- competing load
#: /proc/stat's per-core columns, in order: user nice system idle iowait irq softirq steal
#: (guest time is inside user already). Idle and iowait are the time no one ran.
IDLE_COLUMNS = (3, 4)
STAT_COLUMNS = 8


def core_ticks(stat_text: str, cores: list[int] | None) -> tuple[list[int], int, int] | None:
    """(the cores summed, busy ticks, total ticks) of ``cores``' lines in /proc/stat's text
    (every core's line where ``cores`` is None); None where none of them is there. A column
    an old kernel lacks counts 0."""
    wanted = None if cores is None else set(cores)
    found, busy, total = [], 0, 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        core = int(name[3:])
        if wanted is not None and core not in wanted:
            continue
        columns = [int(value) for value in rest.split()[:STAT_COLUMNS]]
        found.append(core)
        total += sum(columns)
        busy += sum(value for index, value in enumerate(columns) if index not in IDLE_COLUMNS)
    return (found, busy, total) if found else None


def own_cpu_ticks() -> int:
    """This process's CPU time so far, every thread's, in clock ticks: utime + stime, fields
    14 and 15 of /proc/self/stat (counted after the command name, which may hold spaces)."""
    with open("/proc/self/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def load_snapshot() -> tuple[list[int], int, int, int] | None:
    """(cores, their busy ticks, their total ticks, this process's ticks) now, for the cores
    this process may run on; None where /proc cannot be read."""
    try:
        cores: list[int] | None = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = None
    try:
        with open("/proc/stat") as handle:
            counted = core_ticks(handle.read(), cores)
        own = own_cpu_ticks()
    except (OSError, ValueError, IndexError):
        return None
    return None if counted is None else (*counted, own)


def competing_load(before: tuple | None, after: tuple | None) -> dict | None:
    """The protocol's competing_load between two snapshots (None: one is missing, or the
    cores changed between them)."""
    if before is None or after is None or before[0] != after[0]:
        return None
    return {"cores": after[0], "total_ticks": after[2] - before[2],
            "busy_ticks": after[1] - before[1], "own_ticks": after[3] - before[3]}


# ------------------------------------------------------------------------------ protocol
class RunnerError(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


@dataclasses.dataclass
class Timed:
    """What one timing protocol measured, between loading and the result."""

    first_inference_s: float | None
    warmup_samples_s: list
    samples_s: list
    stop_reason: str
    probe_outputs: list  # per probe input, one flat float64 array per output
    output_names: list
    labelled: dict | None
    thermal_before: dict
    thermal_after: dict
    #: The timed cores' time and this process's over the timed phase (None: unknown).
    competing_load: dict | None


def measure(request: dict) -> dict:
    """Load, answer the probes, warm up and time; everything the host needs to judge."""
    np = _import_numpy()
    _check_version(request)
    timing = request["timing"]  # every field is set by the host (protocol.Timing)
    if request.get("paired") is not None and timing.get("mode") == "paper":
        raise RunnerError("request", "paired timing needs the rigorous timing mode")
    name, backend = _backend(request)
    threads = int(request.get("threads") or os.cpu_count() or 1)
    probes = _read_probes(request["probe_inputs"], np)
    load_s = _load(backend, name, request["artifact"], threads)
    memory = {"after_load": peak_resident_bytes()}
    labelled_source = _labelled_source(request, np)
    if timing.get("mode") == "paper":
        timed = _paper_pass(backend, name, probes, labelled_source, np)
    else:
        timed = _rigorous_timing(backend, name, probes, labelled_source, timing, np)
    memory["after_timing"] = peak_resident_bytes()
    notes = backend.notes()
    paired = _paired_if_asked(request, backend, name, threads, probes, timing, notes)
    profile = _profile_if_asked(request, name, threads, probes)
    return _result(backend, name, threads, load_s, timed, memory, np, _peak_if_asked(request),
                   paired, profile, notes)


def _import_numpy():
    try:
        import numpy as np
    except ImportError as exc:
        raise RunnerError("import", f"numpy is not installed here ({exc}); the runner needs "
                                    "it: pip install numpy") from exc
    return np


def _check_version(request: dict) -> None:
    version = request.get("protocol_version", 1)
    if version != PROTOCOL_VERSION:
        raise RunnerError("protocol", f"the host speaks runner protocol {version}, this runner "
                                      f"speaks {PROTOCOL_VERSION}: deploy the runner of the "
                                      "plugin's version")


def _backend(request: dict) -> tuple[str, Backend]:
    name = request["framework"]
    if name not in BACKENDS:
        raise RunnerError("request", f"unknown framework {name!r}; known: {sorted(BACKENDS)}")
    return name, BACKENDS[name]()


def _read_probes(files: list, np, what: str = "probe inputs", mmap_mode=None) -> list:
    """One array per model input, as its tensor_file says (its rows: the probes)."""
    arrays = []
    for tensor_file in files:
        path = tensor_file["path"]
        try:
            values = np.load(path, mmap_mode=mmap_mode)
        except Exception as exc:
            raise RunnerError("inputs", f"cannot read {what} {path}: {exc}") from exc
        if str(values.dtype) != tensor_file["dtype"]:
            raise RunnerError("inputs", f"{what} {path} of input {tensor_file['name']!r} "
                                        f"hold {values.dtype}, not {tensor_file['dtype']}")
        arrays.append(values)
    if len({len(values) for values in arrays}) > 1:
        raise RunnerError("inputs", f"the {what} differ in their number of rows")
    return arrays


def _row(arrays: list, index: int) -> list:
    """Row ``index`` of every input, batch 1."""
    import numpy as np

    return [np.ascontiguousarray(values[index:index + 1]) for values in arrays]


def _load(backend: Backend, name: str, artifact: str, threads: int,
          quiet: bool = False) -> float:
    """Load the artifact; the seconds it took."""
    started = time.perf_counter()
    try:
        backend.load(artifact, threads, quiet)
    except ImportError as exc:
        raise RunnerError("import", f"{name} is not installed here ({exc}); install the "
                                    f"Python package that provides {backend.module}") from exc
    except Exception as exc:
        raise RunnerError("load", f"cannot load {artifact} with {name}: "
                                  f"{type(exc).__name__}: {exc}") from exc
    return time.perf_counter() - started


def _paper_pass(backend: Backend, name: str, probes, labelled_source: tuple | None,
                np) -> Timed:
    """The original protocol: straight after loading, one end-to-end pass over the images,
    first image included, no warm-up; the probes are answered afterwards."""
    if labelled_source is None:
        raise RunnerError("request", "the paper protocol needs labelled images")
    clock = time.perf_counter
    thermal_before = thermal_state()
    load_before = load_snapshot()
    labelled = _run_labelled(backend, labelled_source, clock)
    load = competing_load(load_before, load_snapshot())
    thermal_after = thermal_state()
    outputs, _ = _answer_probes(backend, probes, name, clock, np)
    samples = labelled["end_to_end_s"]
    return Timed(samples[0] if samples else None, [], samples, "one_pass", outputs,
                 backend.output_names(), labelled, thermal_before, thermal_after, load)


def _rigorous_timing(backend: Backend, name: str, probes, labelled_source: tuple | None,
                     timing: dict, np) -> Timed:
    """Probes (the first inference timed on its own: it pays for lazy allocation and
    packing), warm-up, the labelled pass, then samples until the stopping rule is met."""
    clock = time.perf_counter
    timed_input = _row(probes, 0)
    outputs, first_inference_s = _answer_probes(backend, probes, name, clock, np)
    warmup_samples = _time_loop(backend.infer, timed_input, clock,
                                min_samples=int(timing["warmup_min_samples"]),
                                min_time_s=float(timing["warmup_s"]),
                                max_time_s=float(timing["warmup_s"]),
                                max_samples=10**6)[0]
    labelled = (_run_labelled(backend, labelled_source, clock)
                if labelled_source is not None else None)
    thermal_before = thermal_state()
    load_before = load_snapshot()
    samples, stop_reason = _time_loop(
        backend.infer, timed_input, clock,
        min_samples=int(timing["min_samples"]),
        min_time_s=float(timing["min_time_s"]),
        max_time_s=float(timing["max_time_s"]),
        max_samples=int(timing["max_samples"]),
        target_rel_ci=float(timing["target_rel_ci"]),
        confidence=float(timing["confidence"]),
    )
    load = competing_load(load_before, load_snapshot())
    return Timed(first_inference_s, warmup_samples, samples, stop_reason, outputs,
                 backend.output_names(), labelled, thermal_before, thermal_state(), load)


def _paired_if_asked(request: dict, current: Backend, name: str, threads: int, probes,
                     timing: dict, notes: list[str]) -> dict | None:
    """The baseline's artifact timed beside this one, after this one's timing: alternated
    rounds (A B, B A, ...), each a short block of each side, until the per-round ratio's
    median is known within the target or a cap is hit. Drift hits both sides alike."""
    paired = request.get("paired")
    if paired is None:
        return None
    artifact = request["artifact"]
    quiet = current.spins_when_idle
    baseline = BACKENDS[name]()
    try:
        load_s = _load(baseline, name, paired["artifact"], threads, quiet)
    except RunnerError as exc:
        raise RunnerError(exc.stage, f"cannot load the baseline's artifact: {exc}") from exc
    if quiet:  # both sides of the rounds alike; the instance timed above keeps the defaults
        current = BACKENDS[name]()
        _load(current, name, artifact, threads, quiet)
        notes.append(f"paired rounds: both artifacts loaded again with {name}'s idle "
                     "spin-wait off (an idle pool that spins takes the cores the timed side "
                     "needs)")
    clock = time.perf_counter
    timed_input = _row(probes, 0)

    def warm_up(side: Backend) -> list[float]:
        side.infer(timed_input)  # the first call pays lazy allocation and packing: untimed
        return _time_loop(side.infer, timed_input, clock,
                          min_samples=int(timing["warmup_min_samples"]),
                          min_time_s=float(timing["warmup_s"]),
                          max_time_s=float(timing["warmup_s"]), max_samples=10**6)[0]

    try:
        if quiet:
            warm_up(current)
        warmup = warm_up(baseline)  # the one reported
        rounds, stop_reason = paired_rounds(baseline.infer, current.infer, timed_input, clock,
                                            paired, float(timing["confidence"]))
    except Exception as exc:
        raise RunnerError("infer", f"inference failed in {name} while timing the pair: "
                                   f"{type(exc).__name__}: {exc}") from exc
    return {"load_s": load_s, "warmup_samples_s": warmup, "rounds": rounds,
            "stop_reason": stop_reason}


def paired_rounds(baseline_infer, current_infer, batch, clock, paired: dict,
                  confidence: float) -> tuple[list[dict], str]:
    """Rounds of one block per side, the side that runs first alternating, until the stopping
    rule (the same on the native runner) says stop."""
    block_samples = int(paired["block_min_samples"])
    block_time_s = float(paired["block_min_time_s"])
    min_rounds, max_rounds = int(paired["min_rounds"]), int(paired["max_rounds"])
    max_time_s, target = float(paired["max_time_s"]), float(paired["target_rel_ci"])

    def block(infer) -> list[float]:
        return _time_loop(infer, batch, clock, min_samples=block_samples,
                          min_time_s=block_time_s, max_time_s=math.inf,
                          max_samples=10**9)[0]

    rounds: list[dict] = []
    ratios: list[float] = []
    started = clock()
    while True:
        if len(rounds) % 2 == 0:
            order, baseline_s = "baseline_first", block(baseline_infer)
            current_s = block(current_infer)
        else:
            order, current_s = "current_first", block(current_infer)
            baseline_s = block(baseline_infer)
        rounds.append({"order": order, "baseline_s": baseline_s, "current_s": current_s})
        ratios.append(_median_of_sorted(sorted(current_s))
                      / _median_of_sorted(sorted(baseline_s)))
        n = len(rounds)
        if n >= min_rounds and median_relative_half_width(ratios, confidence) <= target:
            return rounds, "converged"
        if n >= max_rounds:
            return rounds, "sample_cap"
        if n >= 2 and clock() - started >= max_time_s:
            return rounds, "time_cap"


def _profile_if_asked(request: dict, name: str, threads: int, probes) -> dict | None:
    """The per-operator profile: a fresh instance with the framework's profiler on, a few
    untimed inferences, then the profiled ones on this runner's clock. After every timing,
    so the profiler's cost (2-4x per call) never touches a timed sample; a fresh instance,
    so neither does anything the profiler leaves behind. A failure here is the profile's
    reason, never the run's: the timing already measured is kept."""
    asked = request.get("profile")
    if asked is None:
        return None
    runs, warmup_runs = int(asked["runs"]), int(asked["warmup_runs"])
    profiled = BACKENDS[name]()
    try:
        why_not = profiled.enable_profiling()
        if why_not:
            return _no_profile(why_not, profiled.profile_source)
        _load(profiled, name, request["artifact"], threads)
        batch = _row(probes, 0)
        for _ in range(warmup_runs):
            profiled.infer(batch)
        profiled.start_profile()
        clock = time.perf_counter
        total_s = 0.0
        for _ in range(runs):
            t0 = clock()
            profiled.infer(batch)
            total_s += clock() - t0
        records = profiled.stop_profile()
    except Exception as exc:
        return _no_profile(f"the profiling pass failed: {type(exc).__name__}: {exc}",
                           profiled.profile_source)
    ops: dict[tuple[str, str, str], float] = {}  # in the order first seen
    for op_type, op_name, delegate, seconds in records:
        key = (op_type, op_name, delegate)
        ops[key] = ops.get(key, 0.0) + seconds
    if not ops:
        return _no_profile(f"{profiled.profile_source} recorded no operator in {runs} "
                           "inferences", profiled.profile_source)
    return {"ops": [{"op_type": op_type, "name": op_name, "time_s": seconds / runs,
                     "delegate": delegate}
                    for (op_type, op_name, delegate), seconds in ops.items()],
            "total_s": total_s / runs, "runs": runs, "source": profiled.profile_source,
            "unavailable": None}


def _no_profile(reason: str, source: str) -> dict:
    return {"ops": [], "total_s": None, "runs": 0, "source": source, "unavailable": reason}


def _peak_if_asked(request: dict) -> dict | None:
    """The peak probe, after timing so that its heat never touches the timed samples."""
    counts = [int(count) for count in request.get("peak_probe_threads") or []]
    return peak_compute(counts) if counts else None


def _labelled_source(request: dict, np) -> tuple | None:
    """(count, load_image, decoded_on_device, class_map_axis) for the labelled items, or
    None."""
    axis = (request.get("class_map") or {}).get("axis")
    if request.get("labelled_inputs"):
        # preprocessed on the host; memory-mapped, read per item like a file
        tensors = _read_probes(request["labelled_inputs"], np, "labelled inputs", "r")
        return len(tensors[0]), lambda i: _row(tensors, i), False, axis
    images = request.get("images") or []
    if not images:
        return None
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        raise RunnerError("import", f"Pillow is not installed here ({exc}); the runner "
                                    "decodes the JPEGs on the device: "
                                    "pip install pillow") from exc
    spec = request.get("preprocessing")
    return len(images), lambda i: [preprocess(images[i], spec)], True, axis


def _answer_probes(backend: Backend, probes, name: str, clock, np) -> tuple[list, float]:
    """Outputs for every probe input, and the time of the first call (the first inference,
    which pays for lazy allocation and weight packing)."""
    try:
        outputs = []
        for i in range(len(probes[0])):
            inputs = _row(probes, i)
            t0 = clock()
            answer = backend.infer(inputs)
            if i == 0:
                first_s = clock() - t0
            outputs.append([np.asarray(output, dtype=np.float64).reshape(-1)
                            for output in answer])
        return outputs, first_s
    except RunnerError:
        raise
    except Exception as exc:
        raise RunnerError("infer", f"inference failed in {name}: "
                                   f"{type(exc).__name__}: {exc}") from exc


def _run_labelled(backend: Backend, source: tuple, clock) -> dict:
    count, load_image, decoded_on_device, class_map_axis = source
    try:
        return labelled_pass(backend.infer, load_image, count, clock,
                             decoded_on_device=decoded_on_device,
                             class_map_axis=class_map_axis)
    except OSError as exc:  # a file that vanished or cannot be decoded on the device
        raise RunnerError("images", f"cannot read an image: {exc}") from exc


def _result(backend: Backend, name: str, threads: int, load_s: float, timed: Timed,
            memory: dict, np, peak: dict | None, paired: dict | None, profile: dict | None,
            notes: list[str]) -> dict:
    return {
        "ok": True,
        "protocol_version": PROTOCOL_VERSION,
        "runner": "python",
        "runtime": f"Python {platform.python_version()}, numpy {np.__version__}",
        "framework": name,
        "framework_version": backend.version(),
        "threads": threads,
        "load_s": load_s,
        "first_inference_s": timed.first_inference_s,
        "warmup_samples_s": timed.warmup_samples_s,
        "samples_s": timed.samples_s,
        "stop_reason": timed.stop_reason,
        "probe_outputs": [[output.tolist() for output in probe]
                          for probe in timed.probe_outputs],
        "output_names": timed.output_names,
        "labelled": timed.labelled,
        "thermal": {"before": timed.thermal_before, "after": timed.thermal_after},
        "competing_load": timed.competing_load,
        "peak_rss_bytes": memory,
        "notes": notes,
        "peak_compute": peak,
        "paired": paired,
        "profile": profile,
    }


def _time_loop(infer, batch, clock, *, min_samples: int, min_time_s: float, max_time_s: float,
               max_samples: int, target_rel_ci: float | None = None,
               confidence: float = 0.95) -> tuple[list[float], str]:
    """Repeat until the median is known within target_rel_ci, or a cap is reached."""
    samples: list[float] = []
    started = clock()
    next_check = max(min_samples, 10)
    while True:
        t0 = clock()
        infer(batch)
        samples.append(clock() - t0)
        elapsed = clock() - started
        n = len(samples)
        if n >= max_samples:
            return samples, "sample_cap"
        if elapsed >= max_time_s and n >= 1:
            return samples, "time_cap"
        if n < min_samples or elapsed < min_time_s:
            continue
        if target_rel_ci is None:
            return samples, "done"
        if n >= next_check:
            # Checking costs a sort: do it on a geometric schedule, not every sample.
            next_check = n + max(1, n // 10)
            if median_relative_half_width(samples, confidence) <= target_rel_ci:
                return samples, "converged"


def main() -> int:
    if sys.argv[1:2] == [PEAK_PROBE_FLAG]:  # the peak probe's child process
        print(json.dumps(_probe_peak([int(n) for n in sys.argv[2].split(",")])))
        return 0
    # Frameworks print to fd 1 from native code; keep the real stdout for the JSON alone.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        request = json.loads(sys.stdin.read())
        result = measure(request)
        code = 0
    except RunnerError as exc:
        result = _failure(exc.stage, str(exc))
        code = 2
    except Exception as exc:  # a crash is reported, never swallowed
        result = _failure("runner", f"{type(exc).__name__}: {exc}")
        code = 3
    sys.stdout.flush()
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result))
        out.write("\n")
    return code


def _failure(stage: str, error: str) -> dict:
    return {"ok": False, "protocol_version": PROTOCOL_VERSION, "runner": "python",
            "stage": stage, "error": error, "detail": traceback.format_exc()}


if __name__ == "__main__":
    sys.exit(main())
