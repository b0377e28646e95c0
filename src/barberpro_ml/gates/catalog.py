"""What can be claimed: for each model family, the metrics its evaluation report contains.

A claims file is checked against this catalogue (:func:`barberpro_ml.gates.load_claims`): a claim
must name a known family, a metric that family's report contains, a direction that agrees with
the metric's sense and a value inside the metric's range; a non-inferiority setting must name a
metric the family's champion comparison can compute, with a margin small against the metric's
scale.

Each metric has

- a **sense**: ``higher`` (claims are ``at_least``), ``lower`` (claims are ``at_most``) or
  ``signed`` (both directions make sense: ``aggregate_error`` is wrong in either direction, and
  the shipped file bounds it from both sides);
- a **range**: the values the metric can take (``low``, ``high``), and the narrower range a
  claimed value must lie in when there is one (``claim_low``/``claim_high``: a ROC AUC claim
  below 0.5, chance, says nothing);
- a **scale**: the width of the metric's informative range, against which non-inferiority
  margins are judged (ROC AUC: 0.5, from chance to perfect; Brier: 0.25, the score of the
  uninformative constant 0.5; ``None`` for metrics in the data's own units, such as MAE in
  currency, where no scale is known before the data are).

Paired differences ``<metric>_minus_<baseline>`` (the model minus a baseline on the same
resampled rows) keep the **sense of their metric**: "MAE minus naive at most 0" says the model
beats the baseline, and the reversed claim "at least 0" would pass for a model *worse* than the
baseline, the very error this catalogue exists to catch. Their range is ``[low - high,
high - low]`` of the metric, and their scale the metric's.

Names come from the evaluation modules' own constants where they exist
(:data:`~barberpro_ml.evaluation.metrics.HIGHER_IS_BETTER`,
:data:`~barberpro_ml.evaluation.regression.REGRESSION_METRICS`,
:data:`~barberpro_ml.evaluation.ranking.RANKING_METRICS`) so that the two cannot drift; the
job-derived names (the baselines of the LTV and recommendation jobs, the segments metrics) are
written here and checked against the evaluation code by ``tests/test_claims_validation.py``.

Adding a family (``uplift``, say) is one entry in :data:`CATALOGUE`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from barberpro_ml.evaluation.metrics import HIGHER_IS_BETTER
from barberpro_ml.evaluation.ranking import RANKING_METRICS
from barberpro_ml.evaluation.regression import REGRESSION_METRICS

__all__ = [
    "CATALOGUE",
    "MAX_MARGIN_SHARE",
    "FamilyCatalog",
    "MetricSpec",
    "Sense",
    "allowed_directions",
    "family_catalog",
]

Sense = Literal["higher", "lower", "signed"]

#: A non-inferiority margin may be at most this share of its metric's scale (see
#: :func:`barberpro_ml.gates.claims.load_claims` for the rule and why).
MAX_MARGIN_SHARE: Final = 0.1

_INF = math.inf


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a family's evaluation report.

    Attributes
    ----------
    name
        The report key (``roc_auc``, ``mae_minus_naive``, ``ndcg@10``...). Names ending in
        ``@k`` in a catalogue stand for every cut-off (``ndcg@5``, ``ndcg@10``...).
    sense
        ``higher``, ``lower`` or ``signed`` (both claim directions make sense).
    low, high
        The values the metric can take (``-inf``/``inf`` when unbounded).
    scale
        Width of the informative range, for judging margins; ``None`` when the metric is in the
        data's units.
    claim_low, claim_high
        Narrower bounds for a claimed value, when some of the range makes no claim (ROC AUC
        below 0.5); default: ``low``/``high``.
    """

    name: str
    sense: Sense
    low: float
    high: float
    scale: float | None
    claim_low: float | None = None
    claim_high: float | None = None

    @property
    def claim_range(self) -> tuple[float, float]:
        """The interval a claimed value must lie in."""
        lo = self.low if self.claim_low is None else self.claim_low
        hi = self.high if self.claim_high is None else self.claim_high
        return lo, hi

    def minus(self, baseline: str) -> MetricSpec:
        """The paired difference ``<name>_minus_<baseline>``: same sense and scale."""
        return MetricSpec(name=f"{self.name}_minus_{baseline}", sense=self.sense,
                          low=self.low - self.high, high=self.high - self.low, scale=self.scale)

    def describe_range(self) -> str:
        """``[0.5, 1]``, ``[0, inf)``... for messages."""
        lo, hi = self.claim_range
        left = "(-inf" if lo == -_INF else f"[{lo:g}"
        right = "inf)" if hi == _INF else f"{hi:g}]"
        return f"{left}, {right}"


def allowed_directions(sense: Sense) -> tuple[str, ...]:
    """The claim directions that agree with a metric's sense."""
    return {"higher": ("at_least",), "lower": ("at_most",),
            "signed": ("at_least", "at_most")}[sense]


_CUTOFF = re.compile(r"^(?P<base>.+)@(?P<k>[0-9]+)$")


@dataclass(frozen=True)
class FamilyCatalog:
    """What one model family's evaluation report contains, and what its champion comparison uses.

    Attributes
    ----------
    family
        The family name used in claims files and job configs.
    metrics
        The report's metrics (a name ending in ``@k`` stands for every cut-off ``k >= 1``).
    baselines
        Names ``b`` of the paired differences ``<metric>_minus_<b>`` the report also contains.
    differenced
        The metrics (names as in ``metrics``) that have those differences; default: all.
    paired
        Metrics the champion comparison (:class:`~barberpro_ml.gates.ChampionComparison`) can
        use for this family's non-inferiority setting; empty when the family's job has no
        champion comparison.
    no_holdout
        The report kind this family is evaluated without held-out rows, by design (a
        segmentation is scored on the customers it was fitted on; a causal estimate
        cross-fits), or None. Only then does the gate's test-overlap row read "not tested"
        instead of failing a report that compared no training rows: the exemption is the
        family's, so a report cannot claim it by its ``kind`` alone.
    source
        Where the metric names come from, for the reader.
    """

    family: str
    metrics: tuple[MetricSpec, ...]
    baselines: tuple[str, ...] = ()
    differenced: tuple[str, ...] | None = None
    paired: tuple[MetricSpec, ...] = ()
    source: str = ""
    no_holdout: str | None = None

    def spec(self, metric: str) -> MetricSpec | None:
        """The spec of a report key, or None when the family's report has no such metric."""
        for baseline in self.baselines:
            suffix = f"_minus_{baseline}"
            if metric.endswith(suffix):
                base = self._plain(metric[: -len(suffix)])
                if base is None or not self._has_difference(base):
                    return None
                return base.minus(baseline)
        return self._plain(metric)

    def paired_spec(self, metric: str) -> MetricSpec | None:
        """The spec of a champion-comparison metric, or None when it cannot be used."""
        return next((m for m in self.paired if m.name == metric), None)

    def metric_names(self, k: Iterable[int] | None = (5, 10, 20)) -> list[str]:
        """Every report key for the cut-offs ``k`` (default: the recommender job's), in order.

        ``k=None`` keeps the ``@k`` templates (``ndcg@k``), for messages.
        """
        names: list[str] = []
        for m in self.metrics:
            names += self._expand(m.name, k)
        for baseline in self.baselines:
            for m in self.metrics:
                if self._has_difference(m):
                    names += [f"{n}_minus_{baseline}" for n in self._expand(m.name, k)]
        return names

    def _plain(self, metric: str) -> MetricSpec | None:
        by_name = {m.name: m for m in self.metrics}
        if metric in by_name:
            return by_name[metric]
        match = _CUTOFF.match(metric)
        if match and int(match["k"]) >= 1 and f"{match['base']}@k" in by_name:
            return replace(by_name[f"{match['base']}@k"], name=metric)
        return None

    def _has_difference(self, spec: MetricSpec) -> bool:
        if self.differenced is None:
            return True
        match = _CUTOFF.match(spec.name)
        template = f"{match['base']}@k" if match else spec.name
        return template in self.differenced or spec.name in self.differenced

    @staticmethod
    def _expand(name: str, k: Iterable[int] | None) -> list[str]:
        if k is None or not name.endswith("@k"):
            return [name]
        return [name[:-1] + str(c) for c in k]


# --------------------------------------------------------------------------- churn
# Range and scale of every classification metric of evaluation.metrics. The scale is the width
# of the informative range: chance to perfect for ROC AUC and balanced accuracy (0.5); for
# Brier and log loss, perfect to the uninformative constant 0.5 (0.25 and ln 2); for the
# top-decile lift, random (1) to perfect (10); the full range otherwise.
# tests/test_claims_validation.py checks that this table covers HIGHER_IS_BETTER exactly.
_CLASSIFICATION_RANGES: Final[Mapping[str, tuple[float, float, float, float | None]]] = {
    # name: (low, high, scale, claim_low)
    "roc_auc": (0.0, 1.0, 0.5, 0.5),
    "pr_auc": (0.0, 1.0, 1.0, None),
    "accuracy": (0.0, 1.0, 1.0, None),
    "accuracy_at_0_5": (0.0, 1.0, 1.0, None),
    "balanced_accuracy": (0.0, 1.0, 0.5, None),
    "precision": (0.0, 1.0, 1.0, None),
    "recall": (0.0, 1.0, 1.0, None),
    "f1": (0.0, 1.0, 1.0, None),
    "brier": (0.0, 1.0, 0.25, None),
    "log_loss": (0.0, _INF, math.log(2.0), None),
    "ece": (0.0, 1.0, 1.0, None),
    "rms_calibration_error": (0.0, 1.0, 1.0, None),
    # churn rate in the top decile over the overall rate: at most 1 / 0.1 = 10
    "lift_top_decile": (0.0, 10.0, 9.0, None),
}
_UNIT = (0.0, 1.0, 1.0, None)


def _classification_specs() -> tuple[MetricSpec, ...]:
    specs = []
    for name, higher in HIGHER_IS_BETTER.items():
        low, high, scale, claim_low = _CLASSIFICATION_RANGES.get(name, _UNIT)
        specs.append(MetricSpec(name, "higher" if higher else "lower", low, high, scale,
                                claim_low=claim_low))
    return tuple(specs)


_CLASSIFICATION = _classification_specs()

CHURN = FamilyCatalog(
    family="churn",
    metrics=_CLASSIFICATION,
    # registry.champion_comparison passes both models' probabilities: any classification
    # metric has a paired bootstrap (evaluation.bootstrap.paired_bootstrap).
    paired=_CLASSIFICATION,
    source="evaluation.classification.evaluate_scores / evaluate_classifier "
           "(evaluation.metrics.HIGHER_IS_BETTER)",
)

# --------------------------------------------------------------------------- ltv
# Spearman and the normalised Gini are correlations in [-1, 1]; aggregate_error is
# sum(predicted) / sum(realised) - 1 with non-negative predictions, so >= -1, and signed:
# REGRESSION_METRICS orients it as lower-is-better only for paired differences.
_REGRESSION_RANGES: Final[Mapping[str, tuple[Sense | None, float, float, float | None]]] = {
    "mae": (None, 0.0, _INF, None),
    "rmse": (None, 0.0, _INF, None),
    "spearman": (None, -1.0, 1.0, 2.0),
    "gini": (None, -1.0, 1.0, 2.0),
    "aggregate_error": ("signed", -1.0, _INF, 1.0),
}


def _regression_specs() -> tuple[MetricSpec, ...]:
    specs = []
    for name, higher in REGRESSION_METRICS.items():
        sense, low, high, scale = _REGRESSION_RANGES.get(name, (None, -_INF, _INF, None))
        specs.append(MetricSpec(name, sense or ("higher" if higher else "lower"), low, high,
                                scale))
    return tuple(specs)


_REGRESSION = _regression_specs()

LTV = FamilyCatalog(
    family="ltv",
    metrics=_REGRESSION,
    # barberpro_ml.jobs.ltv: evaluate_ltv(y, {xgboost, bgnbd, naive}, candidate="xgboost"),
    # so the report holds <metric>_minus_bgnbd and <metric>_minus_naive for every metric.
    baselines=("naive", "bgnbd"),
    # registry.champion_comparison passes both models' value predictions: MAE and RMSE of
    # gates.check.OTHER_PAIRED_METRICS; in currency units, hence no scale.
    paired=tuple(m for m in _REGRESSION if m.name in ("mae", "rmse")),
    source="evaluation.regression.evaluate_ltv (REGRESSION_METRICS) and the baselines of "
           "barberpro_ml.jobs.ltv",
)

# --------------------------------------------------------------------------- recs
_RANKING = tuple(MetricSpec(f"{name}@k", "higher", 0.0, 1.0, 1.0)
                 for name in (*RANKING_METRICS, "coverage"))

RECS = FamilyCatalog(
    family="recs",
    metrics=_RANKING,
    # barberpro_ml.jobs.recs (with_gate_metrics) adds the paired differences of ndcg, recall
    # and hit against the neighborhood popularity baseline and global popularity.
    baselines=("baseline", "global_popularity"),
    differenced=("ndcg@k", "recall@k", "hit@k"),
    # registry.recs_champion_comparison passes each customer's NDCG@10 under both models and
    # compares their means ("mean" of gates.check.OTHER_PAIRED_METRICS), a value in [0, 1].
    paired=(MetricSpec("mean", "higher", 0.0, 1.0, 1.0),),
    source="evaluation.ranking.evaluate_recommender (RANKING_METRICS, ranking_metric_names) "
           "and barberpro_ml.jobs.recs",
)

# --------------------------------------------------------------------------- segments
SEGMENTS = FamilyCatalog(
    family="segments",
    metrics=(
        # share of customers keeping their cluster id across a retrain
        MetricSpec("id_stability", "higher", 0.0, 1.0, 1.0),
        # adjusted Rand index: 1 identical, about 0 chance, bounded below by -0.5
        MetricSpec("adjusted_rand", "higher", -0.5, 1.0, 1.0),
        MetricSpec("silhouette", "higher", -1.0, 1.0, 2.0),
    ),
    # barberpro_ml.jobs.segments checks with no champion comparison: stability against
    # the champion is itself the claim.
    paired=(),
    source="barberpro_ml.jobs.segments (id_stability, adjusted_rand, silhouette)",
    no_holdout="segmentation",
)

# --------------------------------------------------------------------------- interventions
INTERVENTIONS = FamilyCatalog(
    family="interventions",
    metrics=(
        # 1 - churn_treated / churn_control of the randomised retention campaigns, pooled:
        # 1 would remove all churn; unbounded below (an offer can raise churn)
        MetricSpec("relative_reduction", "higher", -_INF, 1.0, 1.0),
        # churn_control - churn_treated: the share of targeted customers the offer kept
        MetricSpec("absolute_reduction", "higher", -1.0, 1.0, 1.0),
    ),
    # measured from the randomised campaigns (evaluation.uplift.campaign_effects), not from a
    # registered model: nothing to compare with a champion yet
    paired=(),
    source="evaluation.uplift.campaign_effects (pooled relative and absolute reduction), "
           "checked by scoring.insights.success_metrics",
)

# --------------------------------------------------------------------------- uplift
UPLIFT = FamilyCatalog(
    family="uplift",
    metrics=(
        # area between the cumulative-gain curve and random targeting's line: retained
        # customers per targeted customer, integrated over the share targeted
        MetricSpec("qini", "higher", -1.0, 1.0, 1.0),
        MetricSpec("auuc", "higher", -1.0, 1.0, 1.0),
        # the targeting policy's gain per scored customer over sending nothing (currency)
        MetricSpec("policy_gain_dr", "higher", -_INF, _INF, None),
        MetricSpec("policy_gain_ipw", "higher", -_INF, _INF, None),
        # among the customers the policy treats, offered vs their randomised controls
        MetricSpec("relative_churn_reduction", "higher", -_INF, 1.0, 1.0),
        MetricSpec("retention_improvement", "higher", -1.0, _INF, 1.0),
        # simulated data only: true Qini and true profit over the oracle's (true effects)
        MetricSpec("qini_to_oracle", "higher", -_INF, 1.0, 1.0),
        MetricSpec("policy_to_oracle", "higher", -_INF, 1.0, 1.0),
    ),
    # interventions.evaluate.uplift_report: the Qini of targeting by churn risk, paired
    baselines=("churn_risk",),
    differenced=("qini",),
    # the first uplift champion is compared with nothing yet
    paired=(),
    source="interventions.evaluate.evaluate_targeting / uplift_report (barberpro_ml.jobs."
           "uplift)",
)

# --------------------------------------------------------------------------- forecast
FORECAST = FamilyCatalog(
    family="forecast",
    metrics=(
        # share of realised weeks inside their prediction interval: a calibration target,
        # wrong when too low (overconfident) and when too high (uselessly wide), hence signed
        MetricSpec("coverage", "signed", 0.0, 1.0, 1.0),
        # interval width and Winkler score in units of the series' scale (mean absolute
        # one-step change), so neighborhoods and measures can be pooled
        MetricSpec("mean_scaled_width", "lower", 0.0, _INF, None),
        MetricSpec("winkler_scaled", "lower", 0.0, _INF, None),
        # mean absolute scaled error (Hyndman & Koehler 2006), 1 = the in-sample naive error
        MetricSpec("mase", "lower", 0.0, _INF, None),
        MetricSpec("mase_seasonal_naive", "lower", 0.0, _INF, None),
    ),
    # evaluation.forecast.interval_forecast_report(reference="seasonal_naive") adds the
    # paired difference of MASE against seasonal naive on the same forecasts
    baselines=("seasonal_naive",),
    differenced=("mase",),
    # the forecast job has no champion comparison (each retrain forecasts a new future)
    paired=(),
    source="evaluation.forecast.interval_forecast_report (barberpro_ml.jobs.forecast)",
)

# --------------------------------------------------------------------------- pricing
PRICING = FamilyCatalog(
    family="pricing",
    metrics=(
        # relative change of revenue under the recommended prices, from the causal price
        # elasticity (its interval propagated): -1 would lose all revenue; unbounded above
        MetricSpec("revenue_increase", "higher", -1.0, _INF, 1.0),
    ),
    # the evidence comes from the pricing work (price elasticity with double machine
    # learning, issue 18); nothing to compare with a champion yet
    paired=(),
    source="the pricing evaluation (issue 18: elasticity from causal evidence, revenue at "
           "alternative prices)",
    # double machine learning scores every unit out of fold (cross-fitting): no held-out set
    no_holdout="causal",
)

# --------------------------------------------------------------------------- provider departure
PROVIDER_DEPARTURE = FamilyCatalog(
    family="provider-departure",
    metrics=_CLASSIFICATION,
    # barberpro_ml.jobs.provider_departure evaluates with evaluate_classifier and passes both
    # models' probabilities to registry.champion_comparison, as the churn job does
    paired=_CLASSIFICATION,
    source="evaluation.classification.evaluate_classifier (barberpro_ml.jobs."
           "provider_departure)",
)

CATALOGUE: Final[Mapping[str, FamilyCatalog]] = {
    f.family: f for f in (CHURN, LTV, RECS, SEGMENTS, INTERVENTIONS, UPLIFT, FORECAST,
                          PRICING, PROVIDER_DEPARTURE)
}
"""Every model family a claim can be about, by name."""


def family_catalog(family: str) -> FamilyCatalog | None:
    """The catalogue entry of a family, or None when it is unknown."""
    return CATALOGUE.get(family)
