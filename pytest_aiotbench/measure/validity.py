"""Are the deployed artifact's answers still those of the fp32 weights?

Every output of the model is checked on its own: random weights give logits from about
1e-9 (MobileNetV2) to 1e12 (InceptionV3), and a detector's boxes and scores live on scales
of their own, so each comparison is relative to that output's reference scale. The task
says what the answers keep of fp32's (top-1 agreement, per-pixel agreement, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_aiotbench import tasks
from pytest_aiotbench.networks.card import Output
from pytest_aiotbench.tasks import Task

#: What the agreement meant before tasks (results stored by older versions).
CLASSIFICATION_AGREEMENT = tasks.get("classification").agreement_measure


@dataclasses.dataclass(frozen=True)
class OutputCheck:
    """One output against its fp32 reference, over every probe input."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_rel_error: float
    passed: bool
    #: Why it could not be compared ("" where it was).
    problem: str = ""
    #: The name the artifact gives this output ("" where the runner did not say).
    in_artifact: str = ""

    def to_json(self) -> dict[str, Any]:
        data = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "max_rel_error": self.max_rel_error, "passed": self.passed,
                "in_artifact": self.in_artifact}
        return {**data, "problem": self.problem} if self.problem else data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputCheck:
        return cls(data["name"], tuple(data["shape"]), data["dtype"], data["max_rel_error"],
                   data["passed"], data.get("problem", ""), data.get("in_artifact", ""))


@dataclasses.dataclass(frozen=True)
class Validity:
    probes: int
    #: The worst output's worst probe.
    max_rel_error: float
    #: Per probe, its worst output's error.
    rel_errors: tuple[float, ...]
    #: The task's measure of what the answers keep of fp32's, in [0, 1].
    agreement: float
    rtol: float
    outputs: tuple[OutputCheck, ...] = ()
    agreement_measure: str = CLASSIFICATION_AGREEMENT

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= self.rtol

    def describe(self) -> str:
        worst = int(np.argmax(self.rel_errors)) if self.rel_errors else 0
        problems = [f"output {check.name!r}: {check.problem}" for check in self.outputs
                    if check.problem]
        if problems:
            return "; ".join(problems)
        where = ""
        if len(self.outputs) > 1:
            output = max(self.outputs, key=lambda check: check.max_rel_error)
            where = f", output {output.name!r}"
        return (f"max relative error {self.max_rel_error:.3g} (probe {worst}{where}) against "
                f"the fp32 reference, tolerance {self.rtol:.3g}; {self.agreement_measure} "
                f"{self.agreement:.0%} over {self.probes} probe inputs")

    def to_json(self) -> dict[str, Any]:
        return {"probes": self.probes, "max_rel_error": self.max_rel_error,
                "rel_errors": list(self.rel_errors), "agreement": self.agreement,
                "agreement_measure": self.agreement_measure, "rtol": self.rtol,
                "passed": self.passed, "outputs": [check.to_json() for check in self.outputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Validity:
        agreement = data["agreement"] if "agreement" in data else data["top1_agreement"]
        return cls(data["probes"], data["max_rel_error"], tuple(data["rel_errors"]),
                   agreement, data["rtol"],
                   tuple(OutputCheck.from_json(check) for check in data.get("outputs", ())),
                   data.get("agreement_measure", CLASSIFICATION_AGREEMENT))


def compare(answers: Sequence[Sequence[Sequence[float]]], reference: Sequence[np.ndarray],
            outputs: Sequence[Output], rtol: float, task: Task,
            names: Sequence[str] = ()) -> Validity:
    """The runner's answers (per probe, one flat list per output, in the artifact's order:
    the fp32 model's, as every exporter flattens it) against the fp32 reference (per
    output, ``(probes, size)``): per output, the relative error of each probe, max |out -
    ref| / max |ref|; and the task's agreement. ``names``: the artifact's own names."""
    probes = len(reference[0]) if reference else 0
    checks: list[OutputCheck] = []
    errors = np.zeros((len(outputs), probes))
    got: list[np.ndarray] = []
    for index, (output, expected) in enumerate(zip(outputs, reference, strict=True)):
        problem = _shape_problem(answers, index, expected)
        if problem:
            errors[index] = np.inf
            got.append(np.full_like(expected, np.nan))
            checks.append(OutputCheck(output.name, output.shape, output.dtype, float("inf"),
                                      False, problem, _at(names, index)))
            continue
        values = np.asarray([answer[index] for answer in answers], dtype=np.float64)
        scale = np.abs(expected).max(axis=1)
        scale = np.where(scale > 0, scale, 1.0)
        error = np.abs(values - expected).max(axis=1) / scale
        errors[index] = np.where(np.isfinite(error), error, np.inf)
        got.append(values)
        worst = float(errors[index].max()) if probes else 0.0
        checks.append(OutputCheck(output.name, output.shape, output.dtype, worst,
                                  worst <= rtol, in_artifact=_at(names, index)))
    per_probe = errors.max(axis=0) if len(outputs) else np.zeros(probes)
    if any(check.problem for check in checks):
        agreement = 0.0
    else:
        agreement = task.agreement(got, reference, [o.shape for o in outputs],
                                   per_probe <= rtol)
    return Validity(probes, float(per_probe.max()) if probes else 0.0,
                    tuple(float(e) for e in per_probe), agreement, rtol, tuple(checks),
                    task.agreement_measure)


def _at(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else ""


def _shape_problem(answers: Sequence[Sequence[Sequence[float]]], index: int,
                   expected: np.ndarray) -> str:
    """Why the answers' output ``index`` cannot be compared with ``expected`` ("" if it can)."""
    if len(answers) != len(expected):
        return f"the runner answered {len(answers)} probes, not {len(expected)}"
    for answer in answers:
        if len(answer) <= index:
            return (f"the artifact gave {len(answer)} outputs; the fp32 model gives more "
                    "(an output the converter dropped)")
        if len(answer[index]) != expected.shape[1]:
            return (f"the artifact's output {index} has {len(answer[index])} values, the fp32 "
                    f"model's {expected.shape[1]}")
    return ""
