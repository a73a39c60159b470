"""Did the device throttle while it was being timed?"""

from __future__ import annotations

from typing import Any


def throttle_findings(before: dict[str, Any], after: dict[str, Any], *,
                      max_freq_drop: float, max_temp_rise_c: float) -> list[str]:
    """Reasons to distrust a run: a core slowed down, or the SoC heated up, beyond limits."""
    findings = []
    before_khz, after_khz = before.get("core_khz", {}), after.get("core_khz", {})
    for core, khz in before_khz.items():
        later = after_khz.get(core)
        if later is not None and khz > 0 and (khz - later) / khz > max_freq_drop:
            findings.append(f"{core} fell from {khz / 1000:.0f} to {later / 1000:.0f} MHz")
    before_c, after_c = before.get("temperatures_c", {}), after.get("temperatures_c", {})
    for zone, celsius in before_c.items():
        later = after_c.get(zone)
        if later is not None and later - celsius > max_temp_rise_c:
            findings.append(f"{zone} rose from {celsius:.1f} to {later:.1f} C")
    return findings
