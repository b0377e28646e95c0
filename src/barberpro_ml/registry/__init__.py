"""Stage 6: MLflow tracking, the model registry and gated promotion.

- :mod:`~barberpro_ml.registry.models`: fitted estimators as pyfunc models with a signature and
  an input example; registration with the ``challenger`` alias. A logged model ships this
  package's source and the requirements derived from what loading and predicting it imports, so
  it loads where ``barberpro_ml`` is not installed (the module's docstring says what a consumer
  installs).
- :mod:`~barberpro_ml.registry.binding`: gate results bound to the version they judged
  (``record_gate``), the checks on them (``binding_problems``), ``verify_champion``.
- :mod:`~barberpro_ml.registry.promotion`: ``promote``, the only door to ``champion``: it
  re-reads the bound gate result, checks every binding, moves the alias by compare-and-set,
  and logs every attempt; ``load_champion``.
- :mod:`~barberpro_ml.registry.regate`: ``regate`` runs a version's gate again against the
  current champion.
- :mod:`~barberpro_ml.registry.tracking`: run-logging helpers (params, metrics with CI bounds,
  config, digests, git commit, report, gate result, model card).
- :mod:`~barberpro_ml.registry.model_card`: the Markdown model card.
- :mod:`~barberpro_ml.registry.gate_table`: ``champion_gate_table``, every family's champion,
  whether it is verified, and its gate verdicts (for the HTML report).
- :mod:`~barberpro_ml.registry.recs_model`: fitted recommenders as pyfunc models (user ids in,
  top-k out), registration, and the paired champion comparison for recommenders.
- :mod:`~barberpro_ml.registry.forecast_model`: a weekly forecast with its verified intervals
  as a pyfunc model ((measure, neighborhood, horizon) in, the forecast out).
"""

from typing import TYPE_CHECKING

from barberpro_ml._lazy import attach

# The exports, imported on first use (see barberpro_ml._lazy): loading a registered model
# imports only the modules it needs.
if TYPE_CHECKING:
    from barberpro_ml.errors import VersionNotFoundError
    from barberpro_ml.registry.binding import (
        BindingCheck,
        BoundGateResult,
        ChampionVerification,
        GateBinding,
        GateBindingError,
        binding_problems,
        current_champion,
        log_gate_inputs,
        read_bound_gate,
        record_gate,
        verify_champion,
    )
    from barberpro_ml.registry.forecast_model import (
        ForecastModel,
        ForecastSpec,
        log_and_register_forecast,
        log_forecast,
    )
    from barberpro_ml.registry.gate_table import (
        GATE_TABLE_COLUMNS,
        REPORTED_MODELS,
        champion_gate_table,
        missing_sqlite_store,
    )
    from barberpro_ml.registry.model_card import model_card
    from barberpro_ml.registry.models import (
        CHALLENGER,
        ClvParams,
        EstimatorModel,
        FeatureColumn,
        FeatureSchema,
        ModelInputError,
        PyfuncSpec,
        log_and_register,
        log_model,
        register,
    )
    from barberpro_ml.registry.promotion import (
        CHAMPION,
        PROMOTIONS_EXPERIMENT,
        PromotionError,
        PromotionInProgressError,
        PromotionRecord,
        alias_version,
        champion_comparison,
        load_champion,
        promote,
        promotion_log,
        verdict_tags,
    )
    from barberpro_ml.registry.recs_model import (
        RecommenderModel,
        RecommenderSpec,
        log_and_register_recommender,
        log_recommender,
        recs_champion_comparison,
    )
    from barberpro_ml.registry.regate import RegateNotSupportedError, regate
    from barberpro_ml.registry.tracking import (
        configure_tracking,
        feature_catalogue,
        flatten_params,
        frame_digest,
        git_commit,
        log_config,
        log_feature_catalogue,
        log_gate_result,
        log_lineage,
        log_model_card,
        log_params,
        log_report,
        report_metrics,
    )
else:
    __getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GATE_TABLE_COLUMNS",
    "PROMOTIONS_EXPERIMENT",
    "REPORTED_MODELS",
    "BindingCheck",
    "BoundGateResult",
    "ChampionVerification",
    "ClvParams",
    "EstimatorModel",
    "FeatureColumn",
    "FeatureSchema",
    "ForecastModel",
    "ForecastSpec",
    "GateBinding",
    "GateBindingError",
    "ModelInputError",
    "PromotionError",
    "PromotionInProgressError",
    "PromotionRecord",
    "PyfuncSpec",
    "RecommenderModel",
    "RecommenderSpec",
    "RegateNotSupportedError",
    "VersionNotFoundError",
    "alias_version",
    "binding_problems",
    "champion_comparison",
    "champion_gate_table",
    "configure_tracking",
    "current_champion",
    "feature_catalogue",
    "flatten_params",
    "frame_digest",
    "git_commit",
    "load_champion",
    "log_and_register",
    "log_and_register_forecast",
    "log_and_register_recommender",
    "log_config",
    "log_feature_catalogue",
    "log_forecast",
    "log_gate_inputs",
    "log_gate_result",
    "log_lineage",
    "log_model",
    "log_model_card",
    "log_params",
    "log_recommender",
    "log_report",
    "missing_sqlite_store",
    "model_card",
    "promote",
    "promotion_log",
    "read_bound_gate",
    "record_gate",
    "recs_champion_comparison",
    "regate",
    "register",
    "report_metrics",
    "verdict_tags",
    "verify_champion",
]
