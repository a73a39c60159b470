"""From a network card to what a workload needs on the host: weights, probes, references,
and the framework's artifact (from the cache, or exported now)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pytest_aiotbench.artifacts import export_worker
from pytest_aiotbench.artifacts.cache import Artifact, ArtifactCache, Describe
from pytest_aiotbench.artifacts.delegation import Delegation
from pytest_aiotbench.frameworks.base import (
    ExportError,
    Framework,
    ImplementationUnsupported,
    VariantUnsupported,
)
from pytest_aiotbench.networks import implementations
from pytest_aiotbench.networks.card import NetworkCard

#: Bump when probe generation changes (it is part of what the reference outputs mean).
PROBE_REVISION = 1


class BuildError(RuntimeError):
    pass


@dataclasses.dataclass
class PreparedNetwork:
    """A network built once per session, with the fp32 reference answers of its weights."""

    card: NetworkCard
    model: Any
    weights: str  # "random" or "pretrained"
    #: The model's fingerprint: its weights (and, for Keras, its architecture).
    weights_sha256: str
    macs: int
    probes: np.ndarray  # (n, *input_shape[1:]) float32
    reference_outputs: np.ndarray  # (n, num_outputs) float64, from the host's fp32 model
    probe_path: Path
    prepare_s: float
    #: The seed its random weights were drawn with (the export worker draws them again).
    seed: int | None = None


def prepare_network(card: NetworkCard, *, pretrained: bool, seed: int, probe_count: int,
                    workdir: Path) -> PreparedNetwork:
    started = time.perf_counter()
    kind = implementations.get(card.implementation)
    try:
        kind.seed(seed)
        model = card.build(pretrained)
    except Exception as exc:
        raise BuildError(f"building network {card.name!r} failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    probes = make_probes(card, probe_count, seed)
    try:
        reference = np.stack([kind.outputs(model, probes[i:i + 1])
                              for i in range(len(probes))])
        macs = kind.macs(model, card.input_shape)
    except Exception as exc:
        raise BuildError(f"network {card.name!r} does not run on input shape "
                         f"{card.input_shape}: {type(exc).__name__}: {exc}") from exc
    workdir.mkdir(parents=True, exist_ok=True)
    probe_path = workdir / f"{card.label}-probes-{seed}-{probe_count}.npy"
    np.save(probe_path, probes)
    return PreparedNetwork(card, model, "pretrained" if pretrained else "random",
                           kind.fingerprint(model), macs, probes, reference, probe_path,
                           time.perf_counter() - started, seed)


def make_probes(card: NetworkCard, count: int, seed: int) -> np.ndarray:
    """Seeded probe inputs that look like preprocessed images (uniform pixels, scaled and
    normalised as the card's preprocessing does, along its channel axis)."""
    rng = np.random.default_rng([seed, PROBE_REVISION])
    shape = (count, *card.input_shape[1:])
    spec = card.preprocessing
    pixels = rng.random(shape, dtype=np.float32) * np.float32(spec.pixel_range)
    axis = 1 if spec.layout == "NCHW" else len(shape) - 1
    if len(shape) == 4 and shape[axis] == len(spec.mean):
        along = [1, 1, 1, 1]
        along[axis] = -1
        mean = np.asarray(spec.mean, np.float32).reshape(along)
        std = np.asarray(spec.std, np.float32).reshape(along)
        pixels = (pixels - mean) / std
    return np.ascontiguousarray(pixels, dtype=np.float32)


def export_artifact(network: PreparedNetwork, framework: Framework, cache: ArtifactCache,
                    on_build_start: Callable[[str], None] | None = None, *,
                    variant: str = "fp32", calibration: np.ndarray | None = None) -> Artifact:
    """The framework's artifact of this network (fp32 or a variant), from the cache or new.
    ``framework`` is the framework's adapter for the network's implementation.

    The converter runs in the export worker (``export_worker``): a converter that exits,
    aborts or crashes fails this export with its own last words (ExportError), and the
    session goes on."""
    framework.check_variant(variant)
    card = network.card
    # The implementation needs no entry of its own: the fingerprint is of its model and the
    # tools are its adapter's.
    parts = {
        "network": card.name,
        "input_shape": list(card.input_shape),
        "weights_sha256": network.weights_sha256,
        "framework": framework.name,
        "export_revision": framework.export_revision,
        "tools": framework.tool_versions(),
    }
    example = network.probes[0:1]
    #: The worker's peak memory of each export made here, by the file it wrote.
    peaks: dict[str, int | None] = {}

    def describe(artifact: Path) -> Delegation:
        return export_worker.delegation(framework, card.implementation, artifact)

    def measured(artifact: Artifact) -> Artifact:
        return (dataclasses.replace(artifact, export_peak_rss_bytes=peaks.get(artifact.path.name))
                if artifact.built else artifact)

    def export(variant: str, calibration: list[np.ndarray], fp32_artifact: Path | None):
        def build(destination: Path) -> list[str]:
            notes, peaks[destination.name] = _export(network, framework, variant, example,
                                                     calibration, fp32_artifact, destination)
            return notes
        return build

    fp32 = measured(_cached(cache, f"{card.label}-{framework.name}", parts,
                            f"{card.name}{framework.suffix}", on_build_start,
                            export("fp32", [], None), describe))
    if variant == "fp32":
        return fp32
    samples = calibration if calibration is not None else network.probes
    variant_parts = {**parts, "variant": variant, "from_sha256": fp32.sha256,
                     "calibration_sha256": hashlib.sha256(
                         np.ascontiguousarray(samples).tobytes()).hexdigest()}
    batches = [samples[i:i + 1] for i in range(len(samples))]
    return measured(_cached(cache, f"{card.label}-{framework.name}-{variant}", variant_parts,
                            f"{card.name}-{variant}{framework.suffix}", on_build_start,
                            export(variant, batches, fp32.path), describe))


def _cached(cache: ArtifactCache, label: str, parts: dict[str, Any], filename: str,
            on_build_start: Callable[[str], None] | None, build: Callable[[Path], list[str]],
            describe: Describe) -> Artifact:
    """The cache's entry, with its delegation facts; the cache's own failures (a full disk)
    as an ExportError."""
    try:
        return cache.get_or_build(label, parts, filename, build, on_build_start, describe)
    except OSError as exc:
        raise ExportError(f"the artifact cache {cache.root} failed while storing {filename}: "
                          f"{type(exc).__name__}: {exc}") from exc


def _export(network: PreparedNetwork, framework: Framework, variant: str, example: np.ndarray,
            calibration: list[np.ndarray], fp32_artifact: Path | None,
            destination: Path) -> tuple[list[str], int | None]:
    """Write one artifact: in the export worker, or here where the worker cannot rebuild the
    network (or AIOTBENCH_EXPORT_IN_PROCESS=1 asks for it). Its notes, and the worker's
    peak memory over it (None where it was not measured)."""
    card = network.card
    what = "exporting" if variant == "fp32" else f"making the {variant} variant of"
    failed = f"{what} {card.name!r} to {framework.name} failed"
    here: list[str] = []
    if not export_worker.in_process():
        outcome = _in_worker(network, framework, variant, example, calibration, fp32_artifact,
                             destination, failed)
        if isinstance(outcome, export_worker.Done):
            return outcome.notes, outcome.peak_rss_bytes
        here = [f"exported in the session's process: the export worker cannot rebuild "
                f"{card.name!r} for {framework.name} ({outcome})"]
    try:
        notes = export_worker.perform(framework, network.model, card.implementation, variant,
                                      example, calibration, fp32_artifact, destination)
    except VariantUnsupported:
        raise
    except Exception as exc:
        raise ExportError(f"{failed}: {type(exc).__name__}: {exc}") from exc
    return [*notes, *here], None


def _in_worker(network: PreparedNetwork, framework: Framework, variant: str,
               example: np.ndarray, calibration: list[np.ndarray], fp32_artifact: Path | None,
               destination: Path, failed: str) -> export_worker.Done | str:
    """The export worker's answer for the artifact it wrote, or why it cannot export this
    network (the session then does)."""
    job = export_worker.job_for(network, framework, variant, example, calibration,
                                fp32_artifact, destination)
    if job is None:
        return "its builder is not defined at the top level of a module"
    try:
        reply = export_worker.shared_worker().run(job, network.model)
    except export_worker.WorkerDied as exc:
        raise ExportError(f"{failed}: {exc}{export_worker.full_disk_hint(destination)}") \
            from None
    if isinstance(reply, export_worker.Done):
        return reply
    if isinstance(reply, export_worker.Failed):
        if reply.unsupported:
            raise _unsupported(reply.error_type)(reply.message)
        raise ExportError(f"{failed}: {reply.error_type}: {reply.message}")
    return reply.reason


def _unsupported(name: str) -> type[VariantUnsupported]:
    """The skip's own class, by the name the worker gave."""
    return next((kind for kind in (ImplementationUnsupported, VariantUnsupported)
                 if kind.__name__ == name), VariantUnsupported)
