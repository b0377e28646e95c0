"""Stage 5: accuracy gates. Claims (``configs/claims.yaml``) checked against held-out evidence.

A claim passes only when the evaluation supports it (the confidence bound on the right side
clears it, with Holm's correction across claims); a challenger that is significantly worse than
the champion is refused. See :mod:`barberpro_ml.gates.check` for the decision rules.
"""

from barberpro_ml.gates.catalog import CATALOGUE, FamilyCatalog, MetricSpec
from barberpro_ml.gates.check import (
    OTHER_PAIRED_METRICS,
    ChampionComparison,
    ChampionVerdict,
    ClaimVerdict,
    GateResult,
    bootstrap_p_value,
    check,
    holm_adjust,
    paired_metric_names,
)
from barberpro_ml.gates.claims import (
    DEFAULT_MIN_CLASS_COUNT,
    Claim,
    ClaimProblem,
    ClaimsError,
    ClaimSet,
    GateSettings,
    NonInferiority,
    SliceFloor,
    load_claims,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_MIN_CLASS_COUNT",
    "OTHER_PAIRED_METRICS",
    "ChampionComparison",
    "ChampionVerdict",
    "Claim",
    "ClaimProblem",
    "ClaimSet",
    "ClaimVerdict",
    "ClaimsError",
    "FamilyCatalog",
    "GateResult",
    "GateSettings",
    "MetricSpec",
    "NonInferiority",
    "SliceFloor",
    "bootstrap_p_value",
    "check",
    "holm_adjust",
    "load_claims",
    "paired_metric_names",
]
