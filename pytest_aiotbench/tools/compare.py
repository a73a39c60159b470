"""Set the plugin's median beside the frameworks' own bare loops, in one run.

    aiotbench-compare --network mobilenet_v2 resnet50

For each network: one plugin run through pytest, as a user runs it (it exports the files if
needed and gives the median the table shows); then several short rounds, each timing the
plugin's two runners (the very code that takes the plugin's samples, started the way the
plugin starts it: the Python runner and the native C++ runner), a bare onnxruntime loop and
LiteRT's own ``litert-benchmark`` on the same files, back to back. A shared machine drifts by
tens of percent over minutes; within a round the four run seconds apart, so the median of the
per-round ratios measures the harness, not the drift. The harness should add almost nothing,
and the two runners should agree: ratios near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BARE_ORT = r"""
import sys, time, numpy as np, onnxruntime as ort
path, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = threads
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
meta = session.get_inputs()[0]
x = np.random.default_rng(0).random(meta.shape, dtype=np.float32)
feed = {meta.name: x}
end = time.perf_counter() + 0.5
while time.perf_counter() < end:
    session.run(None, feed)
samples, end = [], time.perf_counter() + seconds
while time.perf_counter() < end:
    t0 = time.perf_counter(); session.run(None, feed); samples.append(time.perf_counter() - t0)
print(float(np.median(samples)), len(samples))
"""


def plugin_medians(network: str, threads: int, cache: Path, workdir: Path) -> dict[str, dict]:
    report = workdir / f"{network}.json"
    command = [sys.executable, "-m", "pytest", "--pyargs", "pytest_aiotbench.suite", "-q",
               "-p", "no:cacheprovider", f"--aiot-network={network}",
               "--aiot-framework=onnxruntime,tflite", f"--aiot-threads={threads}",
               f"--aiot-cache={cache}", f"--aiot-json={report}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir, check=False)
    if done.returncode != 0:
        sys.exit(f"the plugin run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    document = json.loads(report.read_text())
    rows = document["devices"]["local"]["workloads"]
    return {row["framework"]: row for row in rows}


def bare_onnxruntime(path: str, threads: int, seconds: float) -> float:
    done = subprocess.run([sys.executable, "-c", BARE_ORT, path, str(threads), str(seconds)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[0])


def litert_benchmark(path: str, threads: int, runs: int, workdir: Path) -> float:
    tool = shutil.which("litert-benchmark") or str(Path(sys.executable).with_name(
        "litert-benchmark"))
    result = workdir / "litert.json"
    subprocess.run([tool, f"--model={path}", f"--num_threads={threads}", f"--num_runs={runs}",
                    "--warmup_runs=20", f"--result_json={result}"],
                   capture_output=True, text=True, check=True)
    return json.loads(result.read_text())["latency"]["median_ms"] / 1e3


def plugin_runner(program, path: str, framework: str, probes: Path, threads: int,
                  seconds: float) -> float:
    """One of the plugin's runners on the local device, timing for a fixed window."""
    from pytest_aiotbench.devices import LocalDevice
    from pytest_aiotbench.runner.protocol import RunRequest, TensorFile, Timing

    # The reference networks take one float image (the ONNX file's one input).
    request = RunRequest(framework, path, (TensorFile("input", "float32", str(probes)),), threads,
                         Timing(min_time_s=seconds, max_time_s=seconds, target_rel_ci=1e-9))
    return statistics.median(LocalDevice().run(program, request, timeout_s=600).samples_s)


def runner_programs(cache: Path) -> dict[str, dict]:
    """The Python runner and the native one (built for this host if needed), by framework."""
    from pytest_aiotbench.runner.native.build import NativeBuilder
    from pytest_aiotbench.runner.program import PYTHON_RUNNER, RunnerProgram

    builder = NativeBuilder(cache, progress=lambda line: print(line, file=sys.stderr))
    programs = {}
    for name in FRAMEWORKS:
        native = builder.build(name)
        programs[name] = {"python": PYTHON_RUNNER, "native": RunnerProgram(
            "native", native.executable, native.libraries, native)}
    return programs


FRAMEWORKS = ("onnxruntime", "tflite")


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", nargs="+", default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="timing window of each tool in a round (default 1)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("AIOTBENCH_CACHE", "models/cache")))
    args = parser.parse_args(argv)
    cache = args.cache.resolve()
    programs = runner_programs(cache)
    lines = [f"{'network':<14}{'framework':<13}{'pytest ms':>10}{'python ms':>10}"
             f"{'native ms':>10}{'bare ms':>10}{'py/bare':>8}{'nat/py':>8}  bare tool; "
             "per-round ratios python/bare | native/python"]
    worst = worst_native = 0.0
    with tempfile.TemporaryDirectory(prefix="aiotbench-compare-") as scratch:
        workdir = Path(scratch)
        for network in args.network:
            rows = plugin_medians(network, args.threads, cache, workdir)
            files = {name: rows[name]["artifact"]["path"] for name in ("onnxruntime", "tflite")}
            probes = workdir / "probes.npy"
            np.save(probes, _input_like(files["onnxruntime"]))
            runner: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
            native: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
            bare: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
            for round_index in range(args.rounds):
                for name in FRAMEWORKS:
                    # Alternate which runner goes first, so neither always gets the cooler
                    # (or the busier) half of the round.
                    order = ("python", "native") if round_index % 2 == 0 else ("native",
                                                                               "python")
                    for kind in order:
                        (runner if kind == "python" else native)[name].append(plugin_runner(
                            programs[name][kind], files[name], name, probes, args.threads,
                            args.seconds))
                bare["onnxruntime"].append(
                    bare_onnxruntime(files["onnxruntime"], args.threads, args.seconds))
                runs = max(20, int(args.seconds / runner["tflite"][-1]))
                bare["tflite"].append(
                    litert_benchmark(files["tflite"], args.threads, runs, workdir))
            for name, tool in (("onnxruntime", "onnxruntime InferenceSession.run loop"),
                               ("tflite", "litert-benchmark")):
                ratios = [r / b for r, b in zip(runner[name], bare[name], strict=True)]
                native_ratios = [n / r for n, r in zip(native[name], runner[name], strict=True)]
                ratio, native_ratio = statistics.median(ratios), statistics.median(native_ratios)
                worst = max(worst, abs(ratio - 1))
                worst_native = max(worst_native, abs(native_ratio - 1))
                lines.append(
                    f"{network:<14}{name:<13}{rows[name]['stats']['median_s'] * 1e3:>10.2f}"
                    f"{statistics.median(runner[name]) * 1e3:>10.2f}"
                    f"{statistics.median(native[name]) * 1e3:>10.2f}"
                    f"{statistics.median(bare[name]) * 1e3:>10.2f}{ratio:>8.3f}"
                    f"{native_ratio:>8.3f}  {tool}; "
                    + ", ".join(f"{r:.3f}" for r in ratios) + " | "
                    + ", ".join(f"{r:.3f}" for r in native_ratios))
    print("\n".join(lines))
    print(f"largest deviation of the plugin's runner from the bare tools: {worst:.1%} "
          f"(median of {args.rounds} rounds of {args.seconds:g} s, {args.threads} threads)")
    print(f"largest deviation of the native runner from the Python runner: {worst_native:.1%}")
    return 0


def _input_like(onnx_path: str):
    """One random input of the model's shape (the probe file the runner expects)."""
    import numpy as np
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(0).random((1, *dims[1:]), dtype=np.float32)


if __name__ == "__main__":
    sys.exit(main())
