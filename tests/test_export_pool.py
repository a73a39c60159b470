"""Exports ahead of timing, several at once: the export pool (artifacts/pool.py) and the
session that starts it at the end of collection."""

from __future__ import annotations

import threading
import time

from conftest import TINY_CNN_MODULE

from pytest_aiotbench.artifacts.pool import FIRST_PEAK_GUESS, ExportPool
from pytest_aiotbench.stages import _covered

SECOND_NET_MODULE = '''
import torch
from pytest_aiotbench import register_network, test_workload  # noqa: F401


@register_network(input_shape=(1, 3, 32, 32), num_classes=5)
def second_cnn():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(6, 5))
'''


def most_at_once(total: float, peak: float | None, exports: int = 4) -> int:
    """How many exports the pool ran at once on a host with ``total`` bytes free when none
    runs, each export taking ``peak`` (the pool measures it: None, unmeasured)."""
    running, most, lock = 0, 0, threading.Lock()

    def export(key):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return key

    pool = ExportPool(3, export, lambda outcome: peak,
                      memory=lambda: total - pool.running * (peak or FIRST_PEAK_GUESS))
    pool.start(range(exports))
    pool.wait_idle()
    assert [pool.outcome(key).result() for key in range(exports)] == list(range(exports))
    pool.close()
    return most


def test_the_pool_starts_an_export_only_where_the_memory_holds_it():
    assert most_at_once(total=100e9, peak=1e9) == 3  # the cores (3 workers) bound it
    # The first alone (the guess does not fit), then as many as the measured peak allows.
    assert most_at_once(total=2.2e9, peak=1e9) == 2
    assert most_at_once(total=2.2e9, peak=None) == 1  # never measured: one at a time


def test_preparing_time_is_the_union_of_the_spans_not_their_sum():
    assert _covered([(0, 4), (1, 3), (2, 6), (10, 11)]) == 7
    assert _covered([]) == 0


def test_exports_run_at_once_ahead_and_never_beside_the_hosts_timing(pytester, run_plugin,
                                                                     tmp_path):
    """Two networks on two frameworks from an empty cache with two export workers: the
    exports overlap each other, no local timing overlaps any export, preparing is the wall
    time (not the sum of the exports) and each export's cost is in the JSON."""
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE, test_second=SECOND_NET_MODULE)
    result, document = run_plugin("--aiot-framework=onnxruntime,tflite",
                                  f"--aiot-cache={tmp_path / 'cache'}",
                                  "--aiot-export-workers=2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["aiotbench: 4 artifacts prepared ahead, up to 2 exports at "
                                 "once (--aiot-export-workers)"])
    rows = document["devices"]["local"]["workloads"]
    exports = [(row["timeline"]["export_start_s"], row["timeline"]["export_end_s"])
               for row in rows]
    timings = [(row["timeline"]["timing_start_s"], row["timeline"]["timing_end_s"])
               for row in rows]
    assert all(start is not None and start < end for start, end in exports)
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(exports)
               for b in exports[i + 1:]), exports
    assert all(timing[0] >= export[1] for timing in timings for export in exports)
    timing = document["environment"]["timing"]
    assert len(timing["exports"]) == timing["artifacts_built"] == 4
    assert timing["prepare_s"] < sum(cost["build_s"] for cost in timing["exports"])
    assert all(cost["peak_rss_bytes"] > 100e6 for cost in timing["exports"])


def test_networks_built_at_once_get_their_seeds_weights(tmp_path):
    """The pool's threads build networks side by side; the seed is torch's global generator,
    so each build must still draw its weights alone (the cache and the release gate key on
    them)."""
    import torch

    from pytest_aiotbench.matrix import NetworkChoice
    from pytest_aiotbench.networks import registry
    from pytest_aiotbench.networks.card import NetworkCard, image_input
    from pytest_aiotbench.settings import parse
    from pytest_aiotbench.stages import Stages

    def slow_builder(pretrained: bool) -> torch.nn.Module:
        layers = []
        for _ in range(40):  # many draws, with room for another thread between them
            layers.append(torch.nn.Linear(16, 16))
            time.sleep(0.001)
        return torch.nn.Sequential(torch.nn.Flatten(), *layers)

    names = [f"drawn_{index}" for index in range(3)]
    for name in names:
        registry.add(NetworkCard(name, slow_builder, inputs=image_input((1, 1, 4, 4)),
                                 num_classes=16, origin=__name__))
    try:
        def fingerprints(at_once: bool) -> list[str]:
            stages = Stages(parse({"probes": "2"}, tmp_path), lambda: None,
                            progress=lambda line: None)
            choices = [NetworkChoice(name, "torch") for name in names]
            if at_once:
                threads = [threading.Thread(target=stages.network, args=(choice,))
                           for choice in choices]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            prints = [stages.network(choice).weights_sha256 for choice in choices]
            stages.close()
            return prints

        alone = fingerprints(at_once=False)
        assert len(set(alone)) == 1  # one seed, one builder: the same weights
        assert fingerprints(at_once=True) == alone
    finally:
        for name in names:
            registry.unregister(name)
