"""The farm's bar, measured: two adbd boards pinned to different cores, timed by a
``pytest -n 2`` farm, against one board alone; alternated, in one run, as ratios.

    python tests/bench_device_farm.py [--rounds 3] [--networks squeezenet1_1,mobilenet_v2]

Real phones are separate silicon; two boards pinned to one core each are the nearest this
host has. The farm should add almost nothing over its slowest board.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adbd_testbed import DebianAdbd, adb_server_running, kill_adb_server

REPO = Path(__file__).resolve().parent.parent


def run(devices: str, workers: int, args: list[str], cache: str, folder: Path) -> float:
    command = [sys.executable, "-m", "pytest", "--pyargs", "pytest_aiotbench.suite", "-q",
               "-p", "no:cacheprovider", f"--aiot-device={devices}", f"--aiot-cache={cache}",
               "--aiot-cooldown=0", *args]
    if workers:
        command += ["-n", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--networks", default="squeezenet1_1,mobilenet_v2")
    parser.add_argument("--frameworks", default="onnxruntime,tflite")
    parser.add_argument("--cache", default=str(REPO / "models" / "cache"))
    options = parser.parse_args()
    args = [f"--aiot-network={options.networks}", f"--aiot-framework={options.frameworks}"]
    server_was_running = adb_server_running()
    with tempfile.TemporaryDirectory(prefix="aiot-farm-") as scratch:
        folder = Path(scratch)
        # Each board's /data/local/tmp (the default work folder) is its own, as on phones.
        boards = [DebianAdbd(folder / name, name, cores=core,
                             private_folder="/data/local/tmp").start()
                  for name, core in (("Farm A", "0"), ("Farm B", "1"))]
        try:
            run("Farm_A,Farm_B", 2, args, options.cache, folder)  # exports, first pushes
            alone, farm = [], []
            for round_ in range(options.rounds):
                alone.append(run("Farm_A", 0, args, options.cache, folder))
                farm.append(run("Farm_A,Farm_B", 2, args, options.cache, folder))
                print(f"round {round_ + 1}: one board alone {alone[-1]:.1f} s, two boards on "
                      f"-n 2 {farm[-1]:.1f} s, ratio {farm[-1] / alone[-1]:.2f}", flush=True)
        finally:
            for board in boards:
                board.stop()
            if not server_was_running:
                kill_adb_server()
    ratios = [f / a for f, a in zip(farm, alone, strict=True)]
    print(f"median wall: one board {statistics.median(alone):.1f} s, farm of two "
          f"{statistics.median(farm):.1f} s; farm / one board: median "
          f"{statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
