"""The uplift model and its targeting policy as an MLflow pyfunc model (``barberpro-uplift``).

A request is a DataFrame of customer features (:func:`barberpro_ml.features.customer_features`
as numbers, :func:`~barberpro_ml.interventions.model_matrix`), one row per customer, as of
the moment an offer would be sent. The response, per row: ``uplift_score`` (the learner's
prediction, for ranking), ``uplift`` (expected churn reduction of the offer: the score
calibrated on the validation campaign; with ``UpliftSpec.policy_confidence``, the cautious
uplift of :func:`~barberpro_ml.interventions.policy.cautious_uplift`), ``value`` (value of
keeping the customer: past-365-day spend, at least one visit's), ``cost`` (expected cost of
the offer: discount x spend per visit x the redemption rate seen in training),
``expected_gain = uplift x value - cost`` and ``treat`` (``expected_gain > 0``):
:class:`~barberpro_ml.interventions.TargetingPolicy`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from barberpro_ml.interventions.evaluate import offer_cost, retention_value
from barberpro_ml.interventions.policy import TargetingPolicy, cautious_uplift
from barberpro_ml.registry.models import (
    CHALLENGER,
    ModelInputError,
    _log_from_code,
    _read_logged,
    register,
)

__all__ = ["OUTPUT_COLUMNS", "UpliftModel", "UpliftSpec", "log_and_register_uplift",
           "log_uplift"]

_ENTRY = Path(__file__).with_name("_uplift_pyfunc_entry.py")
OUTPUT_COLUMNS = ("uplift_score", "uplift", "value", "cost", "expected_gain", "treat")


class UpliftSpec(BaseModel):
    """What :class:`UpliftModel` needs beside the learner (a JSON artifact)."""

    model_config = ConfigDict(frozen=True)
    learner: str
    features: list[str] = Field(min_length=1)
    discount: float = Field(ge=0.0, le=1.0)
    redemption: float = Field(ge=0.0, le=1.0)
    horizon_days: int = Field(ge=1)
    calibration: tuple[float, float] = (0.0, 1.0)
    """``(a, b)``: expected uplift = a + b x the learner's prediction (validation)."""
    policy_confidence: float | None = Field(None, gt=0.0, lt=1.0)
    """None: treat when ``uplift x value > cost`` with the calibrated uplift. A share: the
    uplift decided on is :func:`~barberpro_ml.interventions.policy.cautious_uplift` over
    ``calibration_replicates`` (the ``uplift`` output is then that cautious uplift)."""
    calibration_replicates: list[tuple[float, float]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _replicates_for_confidence(self) -> UpliftSpec:
        if self.policy_confidence is not None and len(self.calibration_replicates) < 2:
            raise ValueError("policy_confidence needs at least two calibration_replicates")
        return self

    def signature(self) -> ModelSignature:
        """Every feature a double (NaN allowed: missing); the five outputs."""
        inputs: list[ColSpec | TensorSpec] = [ColSpec("double", c) for c in self.features]
        outputs: list[ColSpec | TensorSpec] = [
            *(ColSpec("double", c) for c in OUTPUT_COLUMNS[:-1]), ColSpec("boolean", "treat")]
        return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


class UpliftModel(PythonModel):
    """Pyfunc wrapper of a fitted uplift learner and the targeting rule.

    Parameters
    ----------
    learner
        A fitted learner (:mod:`barberpro_ml.interventions.learners`); ``None`` when MLflow
        builds the wrapper from the logged artifacts.
    spec
        Features, offer discount and redemption rate.
    """

    def __init__(self, learner: Any = None, spec: UpliftSpec | None = None) -> None:
        self.learner = learner
        self.spec = spec

    def load_context(self, context: Any) -> None:
        """Read the learner and the spec from the model's artifacts (MLflow calls this)."""
        if self.learner is not None:
            return
        self.learner, self.spec = _read_logged(context, "learner", UpliftSpec)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Uplift, value, cost, expected gain and the decision per customer.

        Raises
        ------
        ModelInputError
            Missing feature columns (named), or values that are not numbers.
        """
        if self.learner is None or self.spec is None:
            raise RuntimeError("UpliftModel has no learner: build it with UpliftModel(learner, "
                               "spec) or load it with mlflow.pyfunc.load_model")
        frame = model_input if isinstance(model_input, pd.DataFrame) \
            else pd.DataFrame(model_input)
        missing = [c for c in self.spec.features if c not in frame.columns]
        if missing:
            raise ModelInputError(f"the request lacks {len(missing)} feature column(s): "
                                  f"{missing[:10]}")
        try:
            x = frame[self.spec.features].astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelInputError(f"feature values must be numbers: {exc}") from None
        score = np.asarray(self.learner.predict(x), dtype=np.float64)
        intercept, slope = self.spec.calibration
        uplift = (intercept + slope * score if self.spec.policy_confidence is None
                  else cautious_uplift(score, self.spec.calibration_replicates,
                                       self.spec.policy_confidence))
        value = retention_value(x)
        cost = offer_cost(x, self.spec.discount, self.spec.redemption)
        policy = TargetingPolicy()
        gain = policy.expected_gain(uplift, value, cost)
        return pd.DataFrame({"uplift_score": score, "uplift": uplift, "value": value,
                             "cost": cost,
                             "expected_gain": gain, "treat": gain > 0}, index=frame.index)


def log_uplift(learner: Any, spec: UpliftSpec, example: pd.DataFrame, *, name: str = "model",
               ship_code: bool = True, extra_pip_requirements: list[str] | None = None
               ) -> ModelInfo:
    """Log a fitted learner and its policy as an MLflow pyfunc model (in the active run)."""
    for needed in ("spend_per_visit", "spend_365d"):
        if needed not in spec.features:
            raise ValueError(f"spec.features must contain {needed!r} (the policy's value and "
                             "cost)")
    wrapper = UpliftModel(learner, spec)
    example = example[spec.features].astype(np.float64).head(5)
    wrapper.predict(None, example)
    return _log_from_code(
        _ENTRY, UpliftModel, name=name, model=("learner", "learner.pkl", learner),
        spec=("spec", "uplift_spec.json", spec), signature=spec.signature(), example=example,
        ship_code=ship_code, extra_pip_requirements=extra_pip_requirements)


def log_and_register_uplift(learner: Any, spec: UpliftSpec, example: pd.DataFrame, name: str,
                            *, alias: str | None = CHALLENGER,
                            tags: dict[str, str] | None = None, **log_kwargs: Any
                            ) -> tuple[ModelInfo, ModelVersion]:
    """:func:`log_uplift` then :func:`~barberpro_ml.registry.register`."""
    info = log_uplift(learner, spec, example, **log_kwargs)
    return info, register(info.model_uri, name, alias=alias, tags=tags)
