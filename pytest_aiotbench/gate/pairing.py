"""Paired re-timing: the baseline's artifact timed beside this run's, in the same session.

A median stored minutes ago on a shared machine, or on another CI runner, drifts by 10-40%:
a gate on stored figures either fails good releases or needs limits too wide to catch a real
regression. Where the artifact changed and the baseline's own file is at hand, the runner
times both in alternated rounds of one call (A B, B A, ...), so drift hits both sides alike,
and the gate judges the ratio of their medians round by round (``PairedRatio``).

The baseline's file is found by the sha256 its run recorded: in ``--aiot-baseline-artifacts``
(a folder kept beside the baseline, e.g. a CI artifact) or in the artifact cache, whose every
entry records its file's hash. What is found is hashed again before it is used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np

from pytest_aiotbench.artifacts.cache import sha256_file
from pytest_aiotbench.gate.figures import Estimate, WorkloadFigures
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.runner.aiot_runner import median_confidence_bounds
from pytest_aiotbench.runner.protocol import PairedTiming

PAIRED, STORED, UNCHANGED = "paired", "stored", "unchanged"
#: ``--aiot-ab``: auto pairs wherever it can; off judges stored figures only.
AB_CHOICES = ("auto", "off")


@dataclasses.dataclass(frozen=True)
class PairPlan:
    """How one workload is compared: paired with the baseline's file, or not and why."""

    mode: str
    baseline_artifact: Path | None = None
    baseline_sha256: str | None = None
    #: Why stored figures are judged where the artifact changed.
    reason: str | None = None


class BaselineArtifacts:
    """Finds a baseline's artifact by its sha256 (and size, so that only files that can
    match are hashed); each file is hashed once a session."""

    def __init__(self, cache_root: Path, folder: Path | None = None):
        self.cache_root = Path(cache_root)
        self.folder = folder
        self._hashes: dict[tuple[Path, int, int], str] = {}

    def where(self) -> str:
        places = [f"the artifact cache {self.cache_root}"]
        if self.folder is not None:
            places.insert(0, str(self.folder))
        return " or ".join(places)

    def find(self, sha256: str, size: int | None = None) -> Path | None:
        candidates = list(self._in_folder(size)) if self.folder is not None else []
        candidates += self._in_cache(sha256)
        for path in candidates:
            if self._sha256(path) == sha256:
                return path
        return None

    def _in_folder(self, size: int | None) -> list[Path]:
        assert self.folder is not None
        return sorted(path for path in self.folder.rglob("*")
                      if path.is_file() and (size is None or path.stat().st_size == size))

    def _in_cache(self, sha256: str) -> list[Path]:
        found = []
        for meta_file in sorted(self.cache_root.glob("*/meta.json")):
            try:
                meta = json.loads(meta_file.read_text())
                if meta["sha256"] == sha256:
                    found.append(meta_file.parent / meta["filename"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an entry being written, or a broken one: the cache rebuilds it
        return found

    def _sha256(self, path: Path) -> str | None:
        try:
            stat = path.stat()
            memo = (path, stat.st_size, stat.st_mtime_ns)
            if memo not in self._hashes:
                self._hashes[memo] = sha256_file(path)
            return self._hashes[memo]
        except OSError:
            return None


def keep_artifact(result: WorkloadResult, folder: Path) -> None:
    """Copy a timed result's artifact into ``folder/<sha256 prefix>/`` (once: a file already
    there is left), written through a temporary name so that an interrupted copy is never
    taken for the artifact."""
    artifact = result.artifact or {}
    if result.stats is None or not artifact.get("sha256") or not artifact.get("path"):
        return
    source = Path(artifact["path"])
    target = folder / artifact["sha256"][:16] / source.name
    if target.exists() or not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def plan(before: WorkloadFigures | None, sha256: str, *, ab: str, protocol: str,
         artifacts: BaselineArtifacts | None) -> PairPlan:
    """How to compare a workload whose artifact has ``sha256`` with ``before``."""
    if before is None:
        return PairPlan(STORED, reason="not in the baseline")
    if before.artifact_sha256 == sha256:
        return PairPlan(UNCHANGED)
    if ab == "off" or artifacts is None:
        return PairPlan(STORED, reason="--aiot-ab=off")
    if protocol == "paper":
        return PairPlan(STORED, reason="the paper protocol times one pass, not rounds")
    if not before.artifact_sha256:
        return PairPlan(STORED, reason="the baseline recorded no artifact hash")
    found = artifacts.find(before.artifact_sha256, before.artifact_bytes)
    if found is None:
        return PairPlan(STORED, reason=(
            f"the baseline's artifact (sha256 {before.artifact_sha256[:12]}) is not in "
            f"{artifacts.where()}; keep it beside the baseline and give "
            "--aiot-baseline-artifacts=DIR"))
    return PairPlan(PAIRED, found, before.artifact_sha256)


@dataclasses.dataclass(frozen=True)
class PairedRatio:
    """This artifact's latency quantile over the baseline's, round by round: the median of
    the per-round ratios and its distribution-free interval (the rounds' order statistics)."""

    ratio: Estimate
    rounds: int
    #: Each side's quantile per round, its median over the rounds and its interval (what the
    #: table shows as "baseline" and "now"; the verdict is the ratio's). Per round, not
    #: pooled: a slow spell gives the faster side more samples, and pooling would weigh it so.
    baseline: Estimate
    now: Estimate

    @classmethod
    def of(cls, paired: PairedTiming, quantile: float, confidence: float) -> PairedRatio:
        baseline = [float(np.quantile(r.baseline_s, quantile)) for r in paired.rounds]
        now = [float(np.quantile(r.current_s, quantile)) for r in paired.rounds]
        ratios = [current / before for current, before in zip(now, baseline, strict=True)]
        return cls(_median(ratios, confidence), len(ratios), _median(baseline, confidence),
                   _median(now, confidence))


def _median(values: list[float], confidence: float) -> Estimate:
    ordered = sorted(values)
    low, high = median_confidence_bounds(len(ordered), confidence)
    return Estimate(float(np.median(ordered)), ordered[low], ordered[high])
