"""What the export worker and the cache's re-hashing cost, measured.

    python tests/bench_export_worker.py [--rounds 3] [--frameworks onnxruntime,tflite,...]
                                        [--hash-mib 100]

1. Exports in the session's process (``AIOTBENCH_EXPORT_IN_PROCESS=1``, as before the
   worker) against exports in the worker: each run is a fresh process that builds a tiny
   network and exports it to each framework into an empty cache; the two alternate, round by
   round, and the ratio of their medians is the overhead (this host's speed drifts 10-40%
   over minutes: only alternated ratios mean anything).
2. sha256 of a ResNet50-size artifact (random bytes, --hash-mib MiB), as the cache re-hashes
   what it serves at the export stage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import TINY_CNN_MODULE  # the tests' tiny network, run as a script from tests/

#: One run: build the network, export it to each framework, report the export calls' times.
RUN = '''
import json, sys, tempfile, time
from pathlib import Path
import bench_tiny  # noqa: F401
from pytest_aiotbench import frameworks, networks
from pytest_aiotbench.artifacts import ArtifactCache, export_artifact, prepare_network

prepared = prepare_network(networks.get("tiny_cnn"), pretrained=False, seed=0,
                           probe_count=3, workdir=Path(tempfile.mkdtemp()))
cache = ArtifactCache(Path(sys.argv[1]))
times = {}
for name in sys.argv[2].split(","):
    started = time.perf_counter()
    artifact = export_artifact(prepared, frameworks.adapter(name, "torch"), cache)
    assert artifact.built, name
    times[name] = time.perf_counter() - started
print(json.dumps(times))
'''


def one_run(folder: Path, frameworks: str, in_process: bool) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(folder), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
    env.pop("AIOTBENCH_EXPORT_IN_PROCESS", None)
    if in_process:
        env["AIOTBENCH_EXPORT_IN_PROCESS"] = "1"
    with tempfile.TemporaryDirectory(prefix="aiot-bench-cache-") as cache:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RUN, cache, frameworks], cwd=folder,
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the export run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def hash_cost(mib: int, repeats: int = 5) -> list[float]:
    from pytest_aiotbench.artifacts.cache import sha256_file

    with tempfile.NamedTemporaryFile(prefix="aiot-bench-hash-") as handle:
        for _ in range(mib):
            handle.write(os.urandom(1 << 20))
        handle.flush()
        sha256_file(Path(handle.name))  # the page cache holds it, as for a file just served
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            sha256_file(Path(handle.name))
            seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frameworks", default="onnxruntime,tflite,pytorch-mobile,executorch")
    parser.add_argument("--hash-mib", type=int, default=100)
    options = parser.parse_args()

    seconds = hash_cost(options.hash_mib)
    median = statistics.median(seconds)
    print(f"sha256 of {options.hash_mib} MiB: median {median * 1000:.0f} ms "
          f"({options.hash_mib / median:.0f} MiB/s; runs "
          f"{', '.join(f'{s * 1000:.0f}' for s in seconds)} ms)")

    with tempfile.TemporaryDirectory(prefix="aiot-bench-") as scratch:
        folder = Path(scratch)
        (folder / "bench_tiny.py").write_text(TINY_CNN_MODULE)
        one_run(folder, options.frameworks, in_process=False)  # warm the file caches
        walls: dict[bool, list[float]] = {True: [], False: []}
        exports: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(options.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for in_process in order:
                wall, times = one_run(folder, options.frameworks, in_process)
                walls[in_process].append(wall)
                exports[in_process].append(sum(times.values()))
                print(f"round {round_ + 1}: {'in process' if in_process else 'worker    '} "
                      f"run {wall:6.1f} s, exports {sum(times.values()):6.1f} s "
                      f"({', '.join(f'{k} {v:.1f}' for k, v in times.items())})")
    for what, figures in (("whole run", walls), ("export calls", exports)):
        before, after = statistics.median(figures[True]), statistics.median(figures[False])
        ratios = [w / b for b, w in zip(figures[True], figures[False], strict=True)]
        print(f"{what}: in process median {before:.1f} s, worker median {after:.1f} s, "
              f"ratio of medians {after / before:.2f} (per round "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
