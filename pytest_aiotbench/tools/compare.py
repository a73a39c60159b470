"""Set the plugin's median beside the frameworks' own bare loops, in one run.

    aiotbench-compare --network mobilenet_v2 resnet50

For each network it runs, in this order: a bare onnxruntime loop and LiteRT's own
``litert-benchmark`` on the very files the plugin deployed, then the plugin (through
pytest, as a user runs it), then the two bare tools again; each bare figure is the mean of
its two runs, so slow drift of a shared machine cancels. The harness should add almost
nothing: the ratios should sit within a few percent of 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", nargs="+", default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="timing per bare run (default 5)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("AIOTBENCH_CACHE", "models/cache")))
    args = parser.parse_args(argv)
    cache = args.cache.resolve()
    lines = [f"{'network':<14}{'framework':<13}{'plugin ms':>10}{'bare ms':>10}"
             f"{'ratio':>8}  bare tool (mean of two runs around the plugin's)"]
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="aiotbench-compare-") as scratch:
        workdir = Path(scratch)
        for network in args.network:
            # First pass: makes sure the artifacts exist; its figures are not used.
            rows = plugin_medians(network, args.threads, cache, workdir)
            ort_path = rows["onnxruntime"]["artifact"]["path"]
            tflite_path = rows["tflite"]["artifact"]["path"]
            runs = max(50, int(args.seconds / rows["tflite"]["stats"]["median_s"]))
            before = (bare_onnxruntime(ort_path, args.threads, args.seconds),
                      litert_benchmark(tflite_path, args.threads, runs, workdir))
            rows = plugin_medians(network, args.threads, cache, workdir)
            after = (bare_onnxruntime(ort_path, args.threads, args.seconds),
                     litert_benchmark(tflite_path, args.threads, runs, workdir))
            for index, (framework, tool) in enumerate(
                    (("onnxruntime", "onnxruntime InferenceSession.run loop"),
                     ("tflite", "litert-benchmark"))):
                bare = (before[index] + after[index]) / 2
                mine = rows[framework]["stats"]["median_s"]
                worst = max(worst, abs(mine / bare - 1))
                lines.append(f"{network:<14}{framework:<13}{mine * 1e3:>10.2f}"
                             f"{bare * 1e3:>10.2f}{mine / bare:>8.3f}  {tool} "
                             f"({before[index] * 1e3:.2f}, {after[index] * 1e3:.2f})")
    print("\n".join(lines))
    print(f"largest deviation from the bare tools: {worst:.1%} ({args.threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
