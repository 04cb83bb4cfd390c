"""The checks a refit must pass before ``refresh`` points a signal at it: :func:`gate_checks`.

A ranker trained on the current SID version keeps serving until the pointer moves, so a new version
must be no worse than the current one on what the ranker relies on: held-out reconstruction (cosine
loss, within ``refresh.max_loss_regression`` relative), the codes it uses (``utilization_min``) and
how many items share a SID (``unique_sid_rate``, each within ``refresh.max_rate_drop`` absolute), all
as recorded in the two artifacts' manifests. When the upstream model is unchanged the items' meaning
is too, so the share of items whose SID changed (churn) must also stay within ``refresh.max_churn``.
A check whose figure either manifest lacks (an artifact from before it was recorded) is skipped.
The manifests score each quantizer's own codes on its held-out items; after a warm start the items
served keep some previous codes (hysteresis), which the churn figure counts but the loss does not.
On a new upstream model the losses compare two embedding spaces, and with another ``fit.seed`` two
hold-outs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidlib.config import RefreshConfig
from sidlib.results import Result


@dataclass(frozen=True)
class GateCheck(Result):
    """One check: the current version's figure, the candidate's, the bound the candidate had to
    meet (``at_most`` or ``at_least``) and whether it did."""

    name: str
    current: float | None
    candidate: float
    bound: float
    direction: str
    passed: bool


def _at_most(name: str, current: float | None, candidate: float, bound: float) -> GateCheck:
    return GateCheck(name, current, float(candidate), float(bound), "at_most", float(candidate) <= bound)


def _at_least(name: str, current: float, candidate: float, bound: float) -> GateCheck:
    return GateCheck(name, current, float(candidate), float(bound), "at_least", float(candidate) >= bound)


def gate_checks(current: Mapping[str, float], candidate: Mapping[str, float], changes: Mapping[str, int] | None,
                *, same_model: bool, limits: RefreshConfig) -> list[GateCheck]:
    """The checks of a candidate version against the current one (metrics as in their manifests;
    ``changes`` as :func:`sidlib.spark.version_changes.prefix_changes` counts them)."""
    checks = []
    if "cosine_loss" in current and "cosine_loss" in candidate:
        loss = float(current["cosine_loss"])
        checks.append(_at_most("cosine_loss", loss, candidate["cosine_loss"], loss * (1 + limits.max_loss_regression)))
    for name in ("utilization_min", "unique_sid_rate"):
        if name in current and name in candidate:
            value = float(current[name])
            checks.append(_at_least(name, value, candidate[name], value - limits.max_rate_drop))
    if same_model and changes and changes.get("compared"):
        churn = changes["sid_changed"] / changes["compared"]
        checks.append(_at_most("churn", None, churn, limits.max_churn))
    return checks


def failed(checks: list[GateCheck]) -> list[GateCheck]:
    return [c for c in checks if not c.passed]
