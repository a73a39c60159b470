"""Numbers a busy machine cannot fake: the share of the timed cores other processes took,
read from /proc by both runners around the timing; rows flagged busy or unstable in one
typed flag list that the table, the JSON, the HTML and the gate read; device selection and
locks that other sessions' devices cannot stop.

Busy processes here are real (``python -c "while True: pass"`` pinned to a core), /proc is
the kernel's, and the end-to-end sessions run both real runners."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_aiotbench.devices import LocalDevice
from pytest_aiotbench.devices.adb import _HostLock
from pytest_aiotbench.gate import ReleaseGate, WorkloadFigures, parse_fail_on
from pytest_aiotbench.gate.baseline import Baseline, _across
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure import flags as row_flags
from pytest_aiotbench.measure import summarize
from pytest_aiotbench.measure.flags import Flag, FlagKind
from pytest_aiotbench.measure.result import PASSED, WorkloadResult
from pytest_aiotbench.report import table
from pytest_aiotbench.runner.aiot_runner import core_ticks
from pytest_aiotbench.runner.protocol import CompetingLoad, PairedRound, PairedTiming
from pytest_aiotbench.score import score_all

BUSY_LOOP = "while True: pass"

#: Milliseconds an inference on one core: tens of samples in half a second, each as likely to
#: be cut by the busy process's turn as not, so the median cannot be known to 0.01%.
SLOW_NET_MODULE = '''
import torch
from pytest_aiotbench import register_network, test_workload  # noqa: F401


@register_network(input_shape=(1, 3, 64, 64), num_classes=10)
def slow_net():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 48, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(48, 48, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(48, 10))
'''


@contextlib.contextmanager
def busy_processes(*cores: int) -> Iterator[None]:
    """One spinning Python per core given, pinned to it, for the block's duration."""
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP],
                                 preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}))
                for core in cores]
    try:
        time.sleep(0.1)  # started and spinning
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@contextlib.contextmanager
def pinned_to(cores: set[int]) -> Iterator[None]:
    """This process (and what it starts meanwhile) on ``cores`` only."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ------------------------------------------------------------------------ /proc arithmetic
STAT = """cpu  900 0 300 5000 100 0 0 0 0 0
cpu0 500 10 100 2000 50 5 5 30 0 0
cpu1 400 0 200 3000 50 0 0 0 0 0
cpu3 100 0 100 800
intr 12345 0 0
ctxt 999
"""


def test_proc_stat_lines_are_summed_for_the_cores_asked_steal_busy_idle_not():
    # cpu0: busy = user+nice+system+irq+softirq+steal, total adds idle and iowait
    assert core_ticks(STAT, [0]) == ([0], 500 + 10 + 100 + 5 + 5 + 30, 2700)
    assert core_ticks(STAT, [0, 1]) == ([0, 1], 650 + 600, 2700 + 3650)
    # every core's line where none is named; an old kernel's short line counts what it has
    assert core_ticks(STAT, None) == ([0, 1, 3], 650 + 600 + 200, 2700 + 3650 + 1000)
    assert core_ticks(STAT, [2]) is None  # an offline core has no line


def test_the_others_share_is_busy_less_own_over_total_clamped():
    assert CompetingLoad((0, 1), 200, 150, 100).others_share == pytest.approx(0.25)
    # a tick's rounding can make own exceed busy: never a negative share
    assert CompetingLoad((0,), 100, 50, 52).others_share == 0.0
    assert CompetingLoad((0,), 100, 103, 0).others_share == 1.0
    assert CompetingLoad((0,), 0, 0, 0).others_share is None


def test_a_busy_process_pinned_to_a_core_is_seen_taking_it():
    """Two real readings of /proc/stat around a window with a busy process on one core:
    that core is nearly all others', and the window of the local device says the same."""
    core = max(os.sched_getaffinity(0))
    with busy_processes(core):
        before = Path("/proc/stat").read_text()
        time.sleep(0.3)
        after = Path("/proc/stat").read_text()
        window = LocalDevice().load_window(0.3)
    load = CompetingLoad.between(before, after, [core])
    assert load is not None and load.cores == (core,) and load.own_ticks == 0
    assert load.total_ticks > 0 and load.others_share > 0.9
    cores = len(os.sched_getaffinity(0))
    assert window is not None and len(window.cores) == cores
    assert window.others_share >= 0.9 / cores


# ------------------------------------------------------------------------------- flags
def test_busy_is_flagged_above_the_limit_with_the_figures():
    load = CompetingLoad((0, 1), 200, 200, 100)
    flag = row_flags.busy(load, 0.25)
    assert flag == Flag(FlagKind.BUSY,
                        "others took 50% of cores 0,1 while it was timed (limit 25%)")
    assert row_flags.busy(load, 0.5) is None  # at the limit: not above it
    assert row_flags.busy(None, 0.0) is None  # the device cannot tell: no flag


def test_unstable_is_a_time_cap_with_the_interval_wider_than_the_target():
    spread = summarize([0.010, 0.011, 0.012, 0.013, 0.014] * 4)
    assert spread.median_ci_rel_half_width > 0.02
    flag = row_flags.unstable(spread, "time_cap", 0.5, 0.02)
    assert flag is not None and flag.kind == FlagKind.UNSTABLE
    assert "stopped at the time cap (0.5 s, 20 samples)" in flag.reason
    assert row_flags.unstable(spread, "converged", 0.5, 0.02) is None
    assert row_flags.unstable(spread, "time_cap", 0.5, 1.0) is None  # within the target
    assert row_flags.unstable(summarize([0.01] * 20), "time_cap", 0.5, 0.02) is None


def timed_row(median_ms: float, sha: str, *flags: Flag, device: str = "local") -> WorkloadResult:
    samples = [median_ms * 1e-3 * (1 + 0.001 * (i % 5 - 2)) for i in range(50)]
    return WorkloadResult(
        key=WorkloadKey(device=device, network="slow_net", framework="tflite"), status=PASSED,
        stats=summarize(samples), samples_s=samples, accuracy=1.0, macs=10**6,
        artifact={"sha256": sha * 64, "bytes": 100}, framework_version="1",
        stop_reason="converged", flags=list(flags),
        competing_load=CompetingLoad((0, 1), 200, 190, 90))


def test_a_row_s_flags_and_contention_round_trip_and_old_files_still_read():
    busy = Flag(FlagKind.BUSY, "others took 50% of cores 0,1 while it was timed (limit 25%)")
    row = timed_row(5.0, "a", busy).to_json()
    assert row["flags"] == [{"kind": "busy", "reason": busy.reason}]
    assert row["contention"] == {"others_share": 0.5, "flagged": True, "cores": [0, 1],
                                 "total_ticks": 200, "busy_ticks": 190, "own_ticks": 90}
    again = WorkloadResult.from_json(json.loads(json.dumps(row)))
    assert again.flags == [busy] and again.others_share == 0.5
    assert WorkloadFigures.of(again).flags == (busy,)
    # A row written before the flag list: its thermal findings, no contention.
    old = {key: value for key, value in row.items() if key not in ("flags", "contention")}
    old["throttled"] = ["cpu0 fell from 3000 to 1200 MHz"]
    read = WorkloadResult.from_json(old)
    assert read.flags == [Flag(FlagKind.THROTTLED, "cpu0 fell from 3000 to 1200 MHz")]
    assert read.competing_load is None and read.others_share is None
    assert read.to_json()["contention"] == {"others_share": None, "flagged": False}
    figures = WorkloadFigures.of(read).to_json()
    del figures["flags"]  # figures saved before flags
    assert WorkloadFigures.from_json(figures).flags == ()


def test_the_table_marks_flagged_rows_says_why_and_the_ranking_how_much_vips():
    busy = Flag(FlagKind.BUSY, "others took 50% of cores 0,1 while it was timed (limit 25%)")
    flagged = timed_row(5.0, "a", busy)
    quiet = timed_row(5.0, "b")
    quiet.key = WorkloadKey(device="local", network="slow_net", framework="onnxruntime")
    lines = table.render(score_all([flagged, quiet]), {})
    header = next(line for line in lines if line.startswith("network"))
    assert header.split()[-1] == "flags"
    row = next(line for line in lines if "tflite" in line and line.startswith("slow_net"))
    assert row.split()[-1] == "busy"
    assert f"busy: {flagged.key.label}: {busy.reason}" in lines
    assert f"flag busy: {FlagKind.BUSY.meaning}" in lines
    assert any("local" in line and "50% of its VIPS from flagged rows" in line
               for line in lines)
    assert not any("flags" in line for line in table.render(score_all([quiet]), {}))


# -------------------------------------------------------------------------------- gate
def test_a_stored_regression_from_a_flagged_row_says_so_and_a_paired_one_does_not():
    baseline_row = timed_row(10.0, "a", Flag(FlagKind.UNSTABLE, "stopped at the time cap"))
    figures = _across([WorkloadFigures.of(baseline_row), WorkloadFigures.of(timed_row(10, "a"))])
    assert [flag.kind for flag in figures.flags] == [FlagKind.UNSTABLE]  # any run's flags
    gate = ReleaseGate(Baseline((), {figures.key: figures}), parse_fail_on("median:+10%"))
    busy = Flag(FlagKind.BUSY, "others took 50% of cores 0,1 while it was timed (limit 25%)")
    slower = timed_row(13.0, "b", busy)
    comparison = gate.judge(slower)
    assert comparison is not None and comparison.failed and comparison.mode == "stored"
    assert comparison.median.verdict() == ("REGRESSED (limit +10%); on flagged figures: this "
                                           "run's row busy; the baseline's row unstable")
    assert slower.gate.flagged == "this run's row busy; the baseline's row unstable"
    assert "on flagged figures: this run's row busy" in comparison.failure_message(
        gate.baseline)
    accuracy = next(c for c in comparison.changes if c.metric.name == "accuracy")
    assert accuracy.flagged == ""  # flags speak of timing, not of answers
    # Paired: the baseline re-timed beside it in this session; the verdict stays as it was.
    rounds = [PairedRound("baseline_first", [0.010] * 3, [0.013] * 3)] * 12
    paired = timed_row(13.0, "b", busy)
    paired.paired = PairedTiming(0.1, [0.01], rounds, "converged")
    comparison = gate.judge(paired)
    assert comparison.mode == "paired" and comparison.median.verdict() == "REGRESSED (limit +10%)"
    assert paired.gate.flagged is None


# ----------------------------------------------------------------------- device locks
def take_in_turn(first: str, second: str, ready, both_hold_one, results) -> None:
    """A session's process: its first device's lock, then (once the other session holds its
    own first) its second's, as two sessions using two devices in opposite orders do."""
    locks = {serial: _HostLock(serial) for serial in (first, second)}
    locks[first].acquire()
    ready.wait()
    both_hold_one.wait()
    try:
        locks[second].acquire(wait_s=20)
        results.put((first, "both held"))
    except Exception as exc:  # a deadlock ends in the lock's timeout
        results.put((first, f"{type(exc).__name__}: {exc}"))
    finally:
        for lock in locks.values():
            lock.release()


def test_two_sessions_taking_two_device_locks_in_opposite_orders_both_finish(tmp_path):
    serials = [f"lock-order-{os.getpid()}-{name}" for name in ("a", "b")]
    context = multiprocessing.get_context("fork")
    ready, both_hold_one = context.Barrier(2), context.Barrier(2)
    results = context.Queue()
    sessions = [context.Process(target=take_in_turn,
                                args=(first, second, ready, both_hold_one, results))
                for first, second in (serials, serials[::-1])]
    for session in sessions:
        session.start()
    for session in sessions:
        session.join(timeout=60)
    answers = dict(results.get(timeout=5) for _ in sessions)
    assert answers == {serial: "both held" for serial in serials}
    for serial in serials:
        _HostLock(serial).path.unlink(missing_ok=True)


# -------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(("runner", "framework"), [("python", "onnxruntime"),
                                                   ("native", "tflite")])
def test_a_busy_core_flags_the_row_busy_and_a_time_cap_marks_it_unstable(
        pytester, run_plugin, runner, framework):
    """A session pinned to one core beside a busy process pinned there too: the runner
    reads that others took about half of the core while it timed, the row is flagged busy,
    the header said the core was busy before timing, and the table marks the row and says
    why. Half a second of a network that needs milliseconds, its samples cut by the other
    process's turns, cannot know its median to ±0.01%: the row is marked unstable too. The
    native session also waits for quiet, in vain within its bound, and says so."""
    pytester.makepyfile(test_slow=SLOW_NET_MODULE)
    # Exported first at full speed: a converter on the busy core would take minutes.
    run_plugin(f"--aiot-framework={framework}", "--aiot-max-time=0.1", json_report=False)
    core = max(os.sched_getaffinity(0))
    waits = ["--aiot-quiet=wait", "--aiot-quiet-wait=0"] if runner == "native" else []
    with pinned_to({core}), busy_processes(core):
        result, document = run_plugin(
            f"--aiot-runner={runner}",
            f"--aiot-framework={framework}", "--aiot-min-time=0.5", "--aiot-max-time=0.5",
            "--aiot-rel-ci=0.0001", *waits)
    result.assert_outcomes(passed=1)
    (row,) = document["devices"]["local"]["workloads"]
    assert row["runner"] == runner and row["stop_reason"] == "time_cap"
    assert row["contention"]["cores"] == [core] and row["contention"]["flagged"]
    assert row["contention"]["others_share"] >= 0.3
    assert [flag["kind"] for flag in row["flags"]] == ["busy", "unstable"]
    assert document["environment"]["host_load"]["others_share"] > 0.25
    result.stdout.fnmatch_lines([
        "aiotbench: host load before timing: load average * on 1 core(s); other processes "
        "took *% of them over 0.2 s (above --aiot-quiet-limit 25%*"])
    result.stdout.fnmatch_lines([
        "network *flags", "slow_net *busy,unstable",
        "busy: slow_net-*: others took *% of cores * while it was timed (limit 25%)",
        "unstable: slow_net-*: stopped at the time cap (0.5 s, * samples) with the "
        "median known to ±*%, target ±0.01%"], consecutive=False)
    result.stdout.fnmatch_lines(["*1. local * (1 workloads; 100% of its VIPS from flagged "
                                 "rows)"])
    if runner == "native":
        assert row["quiet_wait_s"] > 0
        assert any(note.startswith("not re-timed: others still took") for note in row["notes"])
    else:  # warn, the default: in pytest's warnings summary too
        result.stdout.fnmatch_lines([f"*BusyCoresWarning: slow_net-{framework}-local "
                                     "flagged busy: others took *% of cores * while it was "
                                     "timed (limit 25%) (--aiot-quiet=wait waits for quiet "
                                     "before timing)"])
