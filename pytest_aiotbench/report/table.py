"""The end-of-session table: one block per device, then the ranking."""

from __future__ import annotations

import dataclasses

from pytest_aiotbench import tasks
from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.identity import DEFAULT_IMPLEMENTATION, DEFAULT_VARIANT
from pytest_aiotbench.measure.flags import described, kinds, present
from pytest_aiotbench.measure.result import IMAGE, LABELLED, LABELLED_MASKS, WorkloadResult
from pytest_aiotbench.score.variants import VariantGain, variant_gains
from pytest_aiotbench.score.vips import DeviceScore, WorkloadScore, same_workloads

DIFFERENT_WORKLOADS = ("the devices did not all score the same workloads; VIPS is a sum, so "
                       "compare devices on the same set")



def source_short(source: str | None) -> str:
    """A result's accuracy source as the "source" column names it."""
    if source == LABELLED:
        return "labelled"
    if source == LABELLED_MASKS:
        return "mIoU"
    task = tasks.by_measure().get(source or "")
    return task.short if task is not None else (source or "?")


def render(scores: list[DeviceScore], facts: dict[str, DeviceFacts]) -> list[str]:
    lines: list[str] = []
    for score in sorted(scores, key=lambda s: s.device):
        lines += _device_block(score, facts.get(score.device))
        lines.append("")
    lines += render_ranking(scores)
    return lines


@dataclasses.dataclass(frozen=True)
class _Shown:
    """Which optional columns and notes a device's block has."""

    paper: bool
    labelled: bool
    variants: bool
    #: The column shows where the run has networks in another implementation than torch's.
    implementations: bool
    #: The flags column shows where a row is flagged (throttled, busy, unstable).
    flags: bool
    #: What one timed call processes, where every row says the same (else "inference").
    unit: str

    @classmethod
    def of(cls, results: list[WorkloadResult]) -> _Shown:
        return cls(paper=any(r.latency_basis == "end-to-end" for r in results),
                   labelled=any(r.top1 is not None for r in results),
                   variants=any(r.variant != DEFAULT_VARIANT for r in results),
                   implementations=any(r.implementation != DEFAULT_IMPLEMENTATION
                                       for r in results),
                   flags=any(r.flags for r in results),
                   unit=common_unit(results))


def common_unit(results: list[WorkloadResult]) -> str:
    """"image" where every row's inference is one image, else "inference"."""
    units = {r.unit for r in results}
    return units.pop() if len(units) == 1 else "inference"


def per_second(unit: str) -> str:
    return "img/s" if unit == IMAGE else "inf/s"


def _device_block(score: DeviceScore, facts: DeviceFacts | None) -> list[str]:
    results = [row.result for row in score.workloads]
    shown = _Shown.of(results)
    gains = {id(gain.result): gain for gain in variant_gains(results)}
    rows = [_cells(row, shown, gains.get(id(row.result))) for row in score.workloads]
    return [_title(score, facts), *grid(_header(shown), rows), *_notes(score, shown)]


def _title(score: DeviceScore, facts: DeviceFacts | None) -> str:
    described = facts.describe() if facts is not None else ""
    return f"device {score.device}" + (f" ({described})" if described else "")


def _header(shown: _Shown) -> tuple[str, ...]:
    return ("network", *(["impl"] if shown.implementations else []), "framework", "variant",
            "runner", "mean e2e ms" if shown.paper else "median ms", "p90 ms",
            per_second(shown.unit), "±CI",
            *(["e2e ms", "top-1", "top-5"] if shown.labelled else ["accuracy"]), "source",
            *(["Δacc", "speed-up"] if shown.variants else []),
            "peak MB", "GMACs", "VIPS", "share", *(["flags"] if shown.flags else []))


def _cells(row: WorkloadScore, shown: _Shown, gain: VariantGain | None) -> tuple[str, ...]:
    r = row.result
    assert r.stats is not None
    seconds = r.seconds_per_image
    cells = [r.network, *([r.implementation] if shown.implementations else []), r.framework,
             r.variant, r.runner_label, f"{seconds * 1e3:.2f}",
             f"{r.stats.p90_s * 1e3:.2f}", f"{1 / seconds:.1f}",
             f"{r.stats.median_ci_rel_half_width:.1%}"]
    if shown.labelled:
        cells += [_end_to_end(r), _fraction(r.top1), _fraction(r.top5)]
    else:
        cells += [_fraction(r.accuracy)]
    cells += [source_short(r.accuracy_source)]
    if shown.variants:
        cells += ([f"{gain.accuracy_change:+.3f}", f"{gain.speedup:.2f}x"] if gain is not None
                  else ["", ""])
    cells += [_megabytes(r.peak_rss_after_timing_bytes), f"{(r.macs or 0) / 1e9:.3g}",
              f"{row.vips:.2f}", f"{row.vips_share:.1%}"]
    if shown.flags:
        cells.append(",".join(kinds(r.flags)))
    return tuple(cells)


def _notes(score: DeviceScore, shown: _Shown) -> list[str]:
    """What the block's figures mean, then what is wrong with some of its rows."""
    results = [row.result for row in score.workloads]
    basis = ("t = mean seconds per image over one end-to-end pass (JPEG decode + "
             "preprocessing + inference, first image included: the paper's protocol)"
             if shown.paper else f"t = median seconds per {shown.unit}, inference only")
    lines = [f"VIPS {score.vips:.2f}   VOPS {score.vops:.1f}   "
             f"({len(score.workloads)} workloads scored; {basis}; "
             "MFLOPs = million multiply-accumulates)"]
    sources = {r.accuracy_source for r in results}
    for measure, task in tasks.by_measure().items():
        if measure in sources:
            lines.append(f"accuracy source {task.short}: no labelled data scores these rows, "
                         f"so accuracy is the {measure} (the host's) on the probe inputs")
    if LABELLED in sources:
        images = max(r.images for r in results)
        lines.append(f"accuracy source labelled: top-1/top-5 measured on the device with the "
                     f"deployed artifact over {images} labelled items; e2e ms = median "
                     "reading (for images: JPEG decode + preprocessing) + inference")
    if LABELLED_MASKS in sources:
        items = max(r.images for r in results if r.accuracy_source == LABELLED_MASKS)
        lines.append(f"accuracy source mIoU: mean intersection over union of the classes, "
                     f"measured on the device with the deployed artifact over {items} "
                     "labelled masks")
    if any(r.decoded_on_device is False and r.unit == IMAGE for r in results):
        lines.append("e2e ms*: native runner rows exclude JPEG decoding and preprocessing, "
                     "which happened on the host; their e2e is reading the tensor + inference")
    lines.append("runner: python = aiot_runner.py, native = the C++ runner; peak MB = the "
                 "runner's peak resident memory (VmHWM) after timing")
    bundled = sorted({r.native_runner["libc"] for r in results
                      if r.runner_label.endswith("+glibc") and r.native_runner})
    if bundled:
        lines.append(f"native+glibc: the C++ runner with its own C library ({', '.join(bundled)}"
                     "), started through that library's loader: the CPU kernels of the PyPI "
                     "builds, no vendor delegates")
    if shown.variants:
        lines.append("Δacc and speed-up: against the fp32 row of the same network and framework")
    if shown.implementations:
        lines.append("impl: the network's implementation: torch (torchvision's, exported from "
                     "PyTorch) or keras (TensorFlow's own, converted by TensorFlow's tools)")
    published = {r.key.network_label: r.published_top1 for r in results if r.published_top1}
    if published:
        lines.append("published top-1 of the pretrained weights: " + ", ".join(
            f"{name} {value:.3f}" for name, value in published.items()))
    lines += flag_lines(results)
    for result in score.unscored:
        lines.append(f"not scored: {result.key.label}: "
                     f"{result.status}{': ' + _first_line(result.error) if result.error else ''}")
    return lines


def flag_lines(results: list[WorkloadResult]) -> list[str]:
    """Each flagged row with the figures that flagged it, then what each flag means."""
    lines = [line for result in results for line in described(result.key.label, result.flags)]
    return lines + [f"flag {kind.value}: {kind.meaning}"
                    for kind in present(flag for result in results for flag in result.flags)]


def _end_to_end(result) -> str:
    if result.end_to_end is None:
        return "-"
    mark = "*" if result.decoded_on_device is False and result.unit == IMAGE else ""
    return f"{result.end_to_end.median_s * 1e3:.2f}{mark}"


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.0f}"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_ranking(scores: list[DeviceScore]) -> list[str]:
    if not scores:
        return ["no workload was measured"]
    lines = ["ranking by VIPS:"]
    for place, score in enumerate(scores, 1):
        flagged = (f"; {score.flagged_vips_share:.0%} of its VIPS from flagged rows"
                   if score.flagged_vips_share else "")
        lines.append(f"  {place}. {score.device:<24} VIPS {score.vips:10.2f}   "
                     f"VOPS {score.vops:12.1f}   ({len(score.workloads)} workloads{flagged})")
    if not same_workloads(scores):
        lines.append(f"  note: {DIFFERENT_WORKLOADS}")
    return lines


TEXT_COLUMNS = ("network", "impl", "framework", "variant", "runner", "source", "flags")


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
