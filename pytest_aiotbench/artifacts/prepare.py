"""From a network card to what a workload needs on the host: weights, probes, references,
and the framework's artifact (from the cache, or exported now)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pytest_aiotbench.artifacts.cache import Artifact, ArtifactCache
from pytest_aiotbench.frameworks.base import ExportError, Framework, VariantUnsupported
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
                           time.perf_counter() - started)


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
    ``framework`` is the framework's adapter for the network's implementation."""
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
    example = implementations.get(card.implementation).example(network.probes[0:1])

    def guarded(what: str, make: Callable[[], list[str]]) -> list[str]:
        try:
            with warnings.catch_warnings():
                # The exporters warn about their own deprecations on every call: noise here.
                warnings.simplefilter("ignore")
                return make()
        except VariantUnsupported:
            raise
        except Exception as exc:
            raise ExportError(f"{what} {card.name!r} to {framework.name} failed: "
                              f"{type(exc).__name__}: {exc}") from exc

    fp32 = cache.get_or_build(
        f"{card.label}-{framework.name}", parts, f"{card.name}{framework.suffix}",
        lambda destination: guarded("exporting", lambda: framework.export(
            network.model, example, destination)), on_build_start)
    if variant == "fp32":
        return fp32
    samples = calibration if calibration is not None else network.probes
    variant_parts = {**parts, "variant": variant, "from_sha256": fp32.sha256,
                     "calibration_sha256": hashlib.sha256(
                         np.ascontiguousarray(samples).tobytes()).hexdigest()}
    batches = [samples[i:i + 1] for i in range(len(samples))]
    return cache.get_or_build(
        f"{card.label}-{framework.name}-{variant}", variant_parts,
        f"{card.name}-{variant}{framework.suffix}",
        lambda destination: guarded(f"making the {variant} variant of", lambda: (
            framework.make_variant(variant, fp32.path, network.model, example, batches,
                                   destination))), on_build_start)
