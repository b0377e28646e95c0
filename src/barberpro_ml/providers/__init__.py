"""Provider excellence: the provider score, its components and the actions built on them.

Stage order: this package reads the data, features and the scoring API's churn probabilities
(passed in), never the service or the command line.

- :func:`provider_scores`: the 0-100 score with its interval and one column per component.
- :func:`fit_provider_weights`: refit the score's weights and percentile reference on a signal
  observed after the cut-off (the next months' ratings), on the user's own data.
- :func:`provider_actions`: at most three non-pricing actions per barber with the expected
  monthly gain and its interval, each traced to a measured component; pricing actions plug in
  through the ``pricing`` argument (:data:`~barberpro_ml.providers.actions.ActionSource`).
- :func:`customers_to_contact`: the barber's at-risk regulars and the message each needs.
- :mod:`~barberpro_ml.providers.pricing`: price elasticity of bookings from the barbers' price
  rises (double machine learning) and revenue at other prices (imported on its own: it needs
  DoubleML).
"""

from barberpro_ml.providers.actions import (
    ActionSource,
    ProviderAction,
    customers_to_contact,
    provider_actions,
)
from barberpro_ml.providers.components import ProviderComponents, measure_components
from barberpro_ml.providers.config import (
    COMPONENTS,
    ComponentWeights,
    ProviderScoreConfig,
    WeightFitConfig,
    load_score_config,
)
from barberpro_ml.providers.score import provider_scores, score_components
from barberpro_ml.providers.weights import ProviderScoreWeights, fit_provider_weights

__all__ = [
    "COMPONENTS",
    "ActionSource",
    "ComponentWeights",
    "ProviderAction",
    "ProviderComponents",
    "ProviderScoreConfig",
    "ProviderScoreWeights",
    "WeightFitConfig",
    "customers_to_contact",
    "fit_provider_weights",
    "load_score_config",
    "measure_components",
    "provider_actions",
    "provider_scores",
    "score_components",
]
