"""Retention interventions: who to treat, what it earns, whether the seed's claim holds.

After :mod:`barberpro_ml.providers` in the stage order: imports data, features, models,
evaluation, gates, registry and jobs only.

- :mod:`~barberpro_ml.interventions.campaigns`: the randomised campaigns as a modelling
  table (:func:`campaign_frame`) and the sample-ratio-mismatch check.
- :mod:`~barberpro_ml.interventions.learners`: T-, X- and DR-learners on XGBoost.
- :mod:`~barberpro_ml.interventions.qini`: gain curves, Qini and AUUC with paired intervals.
- :mod:`~barberpro_ml.interventions.policy`: the targeting rule with money, its off-policy
  value, the profit curve by budget, and the relative churn reduction among the treated.
- :mod:`~barberpro_ml.interventions.evaluate`: all of it on held-out campaigns.
"""

from barberpro_ml.interventions.campaigns import (
    DEFAULT_SRM_ALPHA,
    campaign_frame,
    model_matrix,
    sample_ratio_mismatch,
)
from barberpro_ml.interventions.learners import (
    LEARNERS,
    DRLearner,
    ProportionalLearner,
    TLearner,
    XLearner,
)
from barberpro_ml.interventions.policy import (
    TargetingPolicy,
    cautious_uplift,
    policy_value,
    profit_curve,
    treated_effect,
)
from barberpro_ml.interventions.qini import gain_curve, qini_report, true_gain_curve

__all__ = [
    "DEFAULT_SRM_ALPHA",
    "LEARNERS",
    "DRLearner",
    "ProportionalLearner",
    "TLearner",
    "TargetingPolicy",
    "XLearner",
    "campaign_frame",
    "cautious_uplift",
    "gain_curve",
    "model_matrix",
    "policy_value",
    "profit_curve",
    "qini_report",
    "sample_ratio_mismatch",
    "treated_effect",
    "true_gain_curve",
]
