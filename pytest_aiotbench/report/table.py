"""The end-of-session table: one block per device, then the ranking."""

from __future__ import annotations

from pytest_aiotbench.gate.figures import WorkloadKey
from pytest_aiotbench.networks.card import DEFAULT_IMPLEMENTATION, network_label
from pytest_aiotbench.score.variants import variant_gains
from pytest_aiotbench.score.vips import DeviceScore, same_workloads

DIFFERENT_WORKLOADS = ("the devices did not all score the same workloads; VIPS is a sum, so "
                       "compare devices on the same set")

SOURCE_SHORT = {
    "top-1 agreement with fp32 reference": "agree-fp32",
    "labelled images": "labelled",
}


def render(scores: list[DeviceScore], facts: dict[str, dict]) -> list[str]:
    lines: list[str] = []
    for score in sorted(scores, key=lambda s: s.device):
        lines += _device_block(score, facts.get(score.device, {}))
        lines.append("")
    lines += render_ranking(scores)
    return lines


def _device_block(score: DeviceScore, facts: dict) -> list[str]:
    title = f"device {score.device}"
    described = [str(facts[k]) for k in ("model", "machine") if facts.get(k)]
    if facts.get("cores_usable") or facts.get("cores"):
        described.append(f"{facts.get('cores_usable') or facts.get('cores')} cores")
    if described:
        title += f" ({', '.join(described)})"
    results = [row.result for row in score.workloads]
    paper = any(r.latency_basis == "end-to-end" for r in results)
    labelled = any(r.top1 is not None for r in results)
    variants = any(r.variant != "fp32" for r in results)
    gains = {id(gain.result): gain for gain in variant_gains(results)}
    # The column shows where the run has networks in another implementation than torch's.
    implementations = any(r.implementation != DEFAULT_IMPLEMENTATION for r in results)

    header = ["network", *(["impl"] if implementations else []), "framework", "variant",
              "runner",
              "mean e2e ms" if paper else "median ms",
              "p90 ms", "img/s", "±CI"]
    if labelled:
        header += ["e2e ms", "top-1", "top-5"]
    else:
        header += ["accuracy"]
    header += ["source"]
    if variants:
        header += ["Δacc", "speed-up"]
    header += ["peak MB", "GMACs", "VIPS", "share"]
    rows = []
    for row in score.workloads:
        r = row.result
        assert r.stats is not None
        seconds = r.seconds_per_image
        cells = [r.network, *([r.implementation] if implementations else []), r.framework,
                 r.variant, r.runner or "?", f"{seconds * 1e3:.2f}",
                 f"{r.stats.p90_s * 1e3:.2f}", f"{1 / seconds:.1f}",
                 f"{r.stats.median_ci_rel_half_width:.1%}"]
        if labelled:
            cells += [_end_to_end(r),
                      _fraction(r.top1), _fraction(r.top5)]
        else:
            cells += [_fraction(r.accuracy)]
        cells += [SOURCE_SHORT.get(r.accuracy_source or "", r.accuracy_source or "?")]
        if variants:
            gain = gains.get(id(r))
            if gain is not None:
                cells += [f"{gain.accuracy_change:+.3f}", f"{gain.speedup:.2f}x"]
            else:
                cells += ["", ""]
        cells += [_megabytes(r.peak_rss_after_timing_bytes), f"{(r.macs or 0) / 1e9:.3g}",
                  f"{row.vips:.2f}", f"{row.vips_share:.1%}"]
        rows.append(tuple(cells))
    lines = [title, *grid(tuple(header), rows)]
    basis = ("t = mean seconds per image over one end-to-end pass (JPEG decode + "
             "preprocessing + inference, first image included: the paper's protocol)"
             if paper else "t = median seconds per image, inference only")
    lines.append(f"VIPS {score.vips:.2f}   VOPS {score.vops:.1f}   "
                 f"({len(score.workloads)} workloads scored; {basis}; "
                 "MFLOPs = million multiply-accumulates)")
    sources = {r.accuracy_source for r in results}
    if "top-1 agreement with fp32 reference" in sources:
        lines.append("accuracy source agree-fp32: no labelled images were given, so accuracy is "
                     "the top-1 agreement with the host's fp32 reference on the probe inputs")
    if LABELLED in sources:
        images = max(r.images for r in results)
        lines.append(f"accuracy source labelled: top-1/top-5 measured on the device with the "
                     f"deployed artifact over {images} labelled images; e2e ms = median JPEG "
                     "decode + preprocessing + inference")
    if any(r.decoded_on_device is False for r in results):
        lines.append("e2e ms*: native runner rows exclude JPEG decoding and preprocessing, "
                     "which happened on the host; their e2e is reading the tensor + inference")
    lines.append("runner: python = aiot_runner.py, native = the C++ runner; peak MB = the "
                 "runner's peak resident memory (VmHWM) after timing")
    if variants:
        lines.append("Δacc and speed-up: against the fp32 row of the same network and framework")
    if implementations:
        lines.append("impl: the network's implementation: torch (torchvision's, exported from "
                     "PyTorch) or keras (TensorFlow's own, converted by TensorFlow's tools)")
    published = {network_label(r.network, r.implementation): r.published_top1
                 for r in results if r.published_top1}
    if published:
        lines.append("published top-1 of the pretrained weights: " + ", ".join(
            f"{name} {value:.3f}" for name, value in published.items()))
    for row in score.workloads:
        if row.result.throttled:
            lines.append(f"throttled: {WorkloadKey.of(row.result).label}: "
                         + "; ".join(row.result.throttled))
    for result in score.unscored:
        lines.append(f"not scored: {WorkloadKey.of(result).label}: "
                     f"{result.status}{': ' + _first_line(result.error) if result.error else ''}")
    return lines


def _end_to_end(result) -> str:
    if result.end_to_end is None:
        return "-"
    mark = "*" if result.decoded_on_device is False else ""
    return f"{result.end_to_end.median_s * 1e3:.2f}{mark}"


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.0f}"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


LABELLED = "labelled images"


def render_ranking(scores: list[DeviceScore]) -> list[str]:
    if not scores:
        return ["no workload was measured"]
    lines = ["ranking by VIPS:"]
    for place, score in enumerate(scores, 1):
        lines.append(f"  {place}. {score.device:<24} VIPS {score.vips:10.2f}   "
                     f"VOPS {score.vops:12.1f}   ({len(score.workloads)} workloads)")
    if not same_workloads(scores):
        lines.append(f"  note: {DIFFERENT_WORKLOADS}")
    return lines


TEXT_COLUMNS = ("network", "impl", "framework", "variant", "runner", "source")


def grid(header: tuple[str, ...], rows: list[tuple[str, ...]],
         text_columns: tuple[str, ...] = TEXT_COLUMNS) -> list[str]:
    """Columns padded to their widest cell: text left-aligned, figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    numeric = {i for i, h in enumerate(header) if h not in text_columns}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:160] if text else ""
