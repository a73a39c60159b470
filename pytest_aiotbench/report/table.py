"""The end-of-session table: one block per device, then the ranking."""

from __future__ import annotations

from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.score.vips import DeviceScore

SOURCE_SHORT = {
    "top-1 agreement with fp32 reference": "agree-fp32",
    "labelled images": "labelled",
}

COLUMNS = ("network", "framework", "variant", "median ms", "p90 ms", "img/s", "±CI",
           "accuracy", "source", "GMACs", "VIPS", "share")


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
    rows = []
    for row in score.workloads:
        r = row.result
        assert r.stats is not None
        rows.append((r.network, r.framework, r.variant, f"{r.stats.median_s * 1e3:.2f}",
                     f"{r.stats.p90_s * 1e3:.2f}", f"{1 / r.stats.median_s:.1f}",
                     f"{r.stats.median_ci_rel_half_width:.1%}", f"{r.accuracy:.3f}",
                     SOURCE_SHORT.get(r.accuracy_source or "", r.accuracy_source or "?"),
                     f"{(r.macs or 0) / 1e9:.2f}", f"{row.vips:.2f}", f"{row.vips_share:.1%}"))
    lines = [title, *_grid(COLUMNS, rows)]
    lines.append(f"VIPS {score.vips:.2f}   VOPS {score.vops:.1f}   "
                 f"({len(score.workloads)} workloads scored; t = median seconds per image, "
                 "inference only; MFLOPs = million multiply-accumulates)")
    sources = {r.result.accuracy_source for r in score.workloads}
    if "top-1 agreement with fp32 reference" in sources:
        lines.append("accuracy source agree-fp32: no labelled images were given, so accuracy is "
                     "the top-1 agreement with the host's fp32 reference on the probe inputs")
    for row in score.workloads:
        if row.result.throttled:
            lines.append(f"throttled: {row.result.network}-{row.result.framework}: "
                         + "; ".join(row.result.throttled))
    for result in score.unscored:
        lines.append(f"not scored: {result.network}-{result.framework}: {result.status}"
                     f"{': ' + _first_line(result.error) if result.error else ''}")
    return lines


def render_ranking(scores: list[DeviceScore]) -> list[str]:
    if not scores:
        return ["no workload was measured"]
    lines = ["ranking by VIPS:"]
    for place, score in enumerate(scores, 1):
        lines.append(f"  {place}. {score.device:<24} VIPS {score.vips:10.2f}   "
                     f"VOPS {score.vops:12.1f}   ({len(score.workloads)} workloads)")
    workload_sets = {frozenset(w.result.workload_id for w in s.workloads) for s in scores}
    if len(scores) > 1 and len(workload_sets) > 1:
        lines.append("  note: the devices did not all score the same workloads; "
                     "VIPS is a sum, so compare devices on the same set")
    return lines


def _grid(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    numeric = {i for i, h in enumerate(header) if h not in ("network", "framework", "variant",
                                                             "source")}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:160] if text else ""


def failed_summary(results: list[WorkloadResult]) -> list[str]:
    return [f"{r.nodeid or r.workload_id}: {_first_line(r.error)}" for r in results
            if r.status != "passed"]
