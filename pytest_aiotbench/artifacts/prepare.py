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
from pytest_aiotbench.networks.card import INTEGER_DTYPES, NetworkCard, Output

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
    #: Per input (the card's order), ``(n, *shape[1:])`` of its dtype.
    probes: tuple[np.ndarray, ...]
    #: What the fp32 model answers: its outputs, named, in the order it returns them.
    outputs: tuple[Output, ...]
    #: Per output, ``(n, size)`` float64: the host's fp32 answers to the probes.
    reference_outputs: tuple[np.ndarray, ...]
    #: Per input, its probes' .npy file.
    probe_paths: tuple[Path, ...]
    prepare_s: float
    #: The seed its random weights were drawn with (the export worker draws them again).
    seed: int | None = None

    @property
    def example(self) -> tuple[np.ndarray, ...]:
        """The first probe of every input, batch 1: what exporters trace with."""
        return batches(self.probes)[0]

    def batches(self, samples: tuple[np.ndarray, ...] | None = None
                ) -> list[tuple[np.ndarray, ...]]:
        """One batch-1 tuple of inputs per row of ``samples`` (default: the probes)."""
        return batches(samples if samples is not None else self.probes)


def batches(rows: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
    """Per row of the inputs' arrays (one per input), a batch-1 tuple of every input."""
    return [tuple(one[i:i + 1] for one in rows) for i in range(len(rows[0]))]


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
        rows = batches(probes)
        answers = [kind.outputs(model, batch) for batch in rows]
        macs = kind.macs(model, rows[0])
    except Exception as exc:
        raise BuildError(_does_not_run(card, exc)) from exc
    outputs = tuple(Output(name, tuple(value.shape), str(value.dtype))
                    for name, value in answers[0].items())
    reference = tuple(np.stack([np.asarray(answer[output.name], np.float64).reshape(-1)
                                for answer in answers]) for output in outputs)
    workdir.mkdir(parents=True, exist_ok=True)
    probe_paths = []
    for one, values in zip(card.inputs, probes, strict=True):
        path = workdir / f"{card.label}-{one.name}-probes-{seed}-{probe_count}.npy"
        np.save(path, values)
        probe_paths.append(path)
    return PreparedNetwork(card, model, "pretrained" if pretrained else "random",
                           kind.fingerprint(model), macs, probes, outputs, reference,
                           tuple(probe_paths), time.perf_counter() - started, seed)


def _does_not_run(card: NetworkCard, exc: Exception) -> str:
    """Why the fp32 model refused its probes; where an integer input's range is the likely
    cause (an id past an embedding's size), the input and its range are named."""
    text = f"{type(exc).__name__}: {exc}"
    shapes = ", ".join(f"{one.name} {one.shape} {one.dtype}" for one in card.inputs)
    message = f"network {card.name!r} does not run on its inputs ({shapes}): {text}"
    integers = [one for one in card.inputs if one.dtype in INTEGER_DTYPES]
    if integers and "index" in text.lower() and "range" in text.lower():
        ranges = ", ".join(f"{one.name!r} draws from [{one.range[0]:g}, {one.range[1]:g})"
                           for one in integers)
        message += (f"; an id is out of the model's range: {ranges}; set high= of that "
                    "Input to the embedding's size")
    return message


def make_probes(card: NetworkCard, count: int, seed: int) -> tuple[np.ndarray, ...]:
    """Seeded probes, one array per input: images look like preprocessed images (uniform
    pixels, scaled and normalised as the card's preprocessing does), ids and other numbers
    are drawn from the input's range."""
    rng = np.random.default_rng([seed, PROBE_REVISION])
    return tuple(np.ascontiguousarray(one.draw(rng, count, card.preprocessing))
                 for one in card.inputs)


def export_artifact(network: PreparedNetwork, framework: Framework, cache: ArtifactCache,
                    on_build_start: Callable[[str], None] | None = None, *,
                    variant: str = "fp32",
                    calibration: tuple[np.ndarray, ...] | None = None) -> Artifact:
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
        **({} if card.short_form else {"inputs": [
            [one.name, list(one.shape), one.dtype] for one in card.inputs]}),
        "weights_sha256": network.weights_sha256,
        "framework": framework.name,
        "export_revision": framework.export_revision,
        "tools": framework.tool_versions(),
    }
    example = network.example
    #: The worker's peak memory of each export made here, by the file it wrote.
    peaks: dict[str, int | None] = {}

    def describe(artifact: Path) -> Delegation:
        return export_worker.delegation(framework, card.implementation, artifact)

    def measured(artifact: Artifact) -> Artifact:
        return (dataclasses.replace(artifact, export_peak_rss_bytes=peaks.get(artifact.path.name))
                if artifact.built else artifact)

    def export(variant: str, calibration: list[tuple[np.ndarray, ...]],
               fp32_artifact: Path | None):
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
    batches = network.batches(calibration)
    digest = hashlib.sha256()
    for batch in batches:
        for one in batch:
            digest.update(np.ascontiguousarray(one).tobytes())
    variant_parts = {**parts, "variant": variant, "from_sha256": fp32.sha256,
                     "calibration_sha256": digest.hexdigest()}
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


def _export(network: PreparedNetwork, framework: Framework, variant: str,
            example: tuple[np.ndarray, ...], calibration: list[tuple[np.ndarray, ...]],
            fp32_artifact: Path | None,
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
               example: tuple[np.ndarray, ...], calibration: list[tuple[np.ndarray, ...]],
               fp32_artifact: Path | None,
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
