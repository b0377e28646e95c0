"""Price elasticities as an MLflow pyfunc model: a proposed price change in, the expected
revenue change with its interval out.

A registered ``barberpro-pricing`` version holds the elasticity table the pricing job estimated
(:attr:`~barberpro_ml.providers.pricing.PriceElasticityDML.elasticities_`) and the rises it
recommended; loading it needs neither DoubleML nor the data
(:mod:`barberpro_ml.models.pricing_table` does the arithmetic).

A request is a DataFrame with one row per proposal:

* ``price_change`` (required, ``double``): the relative change, e.g. ``0.05`` for +5%; it must
  lie within ``[0, largest rise observed in the cell]`` (the evidence says nothing beyond);
* ``price_tier``, ``service``, ``neighborhood`` (optional, ``string``; default ``all``): the
  cell whose elasticity applies (a provider's proposal uses its tier).

The response: ``price_tier, service, neighborhood, price_change, elasticity,
elasticity_low, elasticity_high, revenue_change, revenue_change_low, revenue_change_high``
(the mean and the ``level`` interval of ``(1 + dp) ** (1 + eps) - 1``).
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
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.models.pricing_table import ALL, lookup_elasticity, revenue_change_interval
from barberpro_ml.registry.models import (
    CHALLENGER,
    ModelInputError,
    _log_from_code,
    _read_logged,
    register,
)

__all__ = ["PricingModel", "PricingSpec", "champion_pricing", "log_and_register_pricing",
           "log_pricing"]

_ENTRY = Path(__file__).with_name("_pricing_pyfunc_entry.py")
_CELL = ("price_tier", "service", "neighborhood")


class PricingSpec(BaseModel):
    """What :class:`PricingModel` says about its table (a JSON artifact)."""

    model_config = ConfigDict(frozen=True)
    level: float = Field(gt=0.0, lt=1.0)
    pre_weeks: int = Field(ge=1)
    post_weeks: int = Field(ge=1)
    recommended: list[dict[str, Any]]
    """Per price tier, the best supported rise and its revenue change."""

    def signature(self) -> ModelSignature:
        """``price_change`` required; the cell's dimensions optional."""
        inputs: list[ColSpec | TensorSpec] = [
            ColSpec("double", "price_change"),
            *(ColSpec("string", c, required=False) for c in _CELL)]
        outputs: list[ColSpec | TensorSpec] = [
            *(ColSpec("string", c) for c in _CELL), ColSpec("double", "price_change"),
            *(ColSpec("double", c) for c in ("elasticity", "elasticity_low", "elasticity_high",
                                             "revenue_change", "revenue_change_low",
                                             "revenue_change_high"))]
        return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


class PricingModel(PythonModel):
    """Pyfunc wrapper of one elasticity table.

    Parameters
    ----------
    table
        :data:`~barberpro_ml.models.pricing_table.ELASTICITY_COLUMNS` rows; ``None`` when
        MLflow builds the wrapper from the logged artifacts (``load_context`` fills it).
    spec
        Level, windows and the recommended rises.
    """

    def __init__(self, table: pd.DataFrame | None = None,
                 spec: PricingSpec | None = None) -> None:
        self.table = table
        self.spec = spec

    def load_context(self, context: Any) -> None:
        """Read the table and the spec from the model's artifacts (MLflow calls this)."""
        if self.table is not None:
            return
        self.table, self.spec = _read_logged(context, "elasticities", PricingSpec)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The revenue change of every proposed price change.

        Raises
        ------
        ModelInputError
            No ``price_change`` column, a cell without an elasticity, or a change outside the
            rises the cell's evidence covers.
        """
        if self.table is None or self.spec is None:
            raise RuntimeError("PricingModel has no table: build it with PricingModel(table, "
                               "spec) or load it with mlflow.pyfunc.load_model")
        frame = model_input if isinstance(model_input, pd.DataFrame) \
            else pd.DataFrame(model_input)
        if "price_change" not in frame.columns:
            raise ModelInputError("the request needs a 'price_change' column (relative "
                                  "change, e.g. 0.05 for +5%)")
        rows = []
        for i, req in enumerate(frame.to_dict("records")):
            cell = {c: str(req.get(c) or ALL) for c in _CELL}
            dp = float(req["price_change"])
            try:
                r = lookup_elasticity(self.table, **cell)
            except KeyError as exc:
                raise ModelInputError(f"row {i}: {exc.args[0]}") from None
            top = float(r["max_step"]) - 1.0
            if not (np.isfinite(dp) and 0.0 <= dp <= top + 1e-9):
                raise ModelInputError(
                    f"row {i}: price_change {dp:+.3f} is outside the rises this cell's "
                    f"evidence covers, [0, {top:+.3f}]: the elasticity says nothing there")
            # tables logged before the t intervals carry no dof: their intervals were normal
            dof = float(r["dof"]) if "dof" in r.index else None
            mean, low, high = revenue_change_interval(dp, float(r["elasticity"]),
                                                      float(r["std_error"]), self.spec.level,
                                                      dof)
            rows.append({**cell, "price_change": dp, "elasticity": float(r["elasticity"]),
                         "elasticity_low": float(r["ci_low"]),
                         "elasticity_high": float(r["ci_high"]),
                         "revenue_change": float(mean), "revenue_change_low": float(low),
                         "revenue_change_high": float(high)})
        return pd.DataFrame(rows, columns=[*_CELL, "price_change", "elasticity",
                                           "elasticity_low", "elasticity_high",
                                           "revenue_change", "revenue_change_low",
                                           "revenue_change_high"])


def log_pricing(table: pd.DataFrame, recommended: pd.DataFrame, *, level: float,
                pre_weeks: int, post_weeks: int, name: str = "model", ship_code: bool = True,
                extra_pip_requirements: list[str] | None = None) -> ModelInfo:
    """Log an elasticity table as an MLflow pyfunc model (in the active run)."""
    spec = PricingSpec(level=level, pre_weeks=pre_weeks, post_weeks=post_weeks,
                       recommended=recommended.replace({np.nan: None}).to_dict("records"))
    wrapper = PricingModel(table.reset_index(drop=True), spec)
    first = table.iloc[0]
    top = float(np.floor((float(first["max_step"]) - 1.0) * 1000) / 1000)
    example = pd.DataFrame({"price_change": [0.0, top],
                            "price_tier": [str(first["price_tier"])] * 2,
                            "service": [str(first["service"])] * 2,
                            "neighborhood": [str(first["neighborhood"])] * 2})
    wrapper.predict(None, example)
    return _log_from_code(
        _ENTRY, PricingModel, name=name,
        model=("elasticities", "elasticities.pkl", wrapper.table),
        spec=("spec", "pricing_spec.json", spec), signature=spec.signature(),
        example=example, ship_code=ship_code, extra_pip_requirements=extra_pip_requirements)


def log_and_register_pricing(table: pd.DataFrame, recommended: pd.DataFrame, name: str, *,
                             alias: str | None = CHALLENGER, tags: dict[str, str] | None = None,
                             **log_kwargs: Any) -> tuple[ModelInfo, ModelVersion]:
    """:func:`log_pricing` then :func:`~barberpro_ml.registry.register`."""
    info = log_pricing(table, recommended, **log_kwargs)
    return info, register(info.model_uri, name, alias=alias, tags=tags)


def champion_pricing(name: str = "barberpro-pricing", *, alias: str = "champion",
                     tracking_uri: str | None = None) -> tuple[PricingModel, str]:
    """The pricing model behind ``name@alias`` (in the store at ``tracking_uri``, default: the
    current one) and its version; the mirror of
    :func:`~barberpro_ml.registry.forecast_model.champion_forecast`.

    Raises
    ------
    ModelUnavailableError
        No such alias, or the version is not a pricing model.
    """
    from barberpro_ml.errors import ModelUnavailableError
    from barberpro_ml.registry.promotion import load_champion

    try:
        model, mv = load_champion(name, alias=alias, tracking_uri=tracking_uri)
    except LookupError as exc:
        raise ModelUnavailableError(str(exc)) from None
    wrapper = model.unwrap_python_model()  # type: ignore[no-untyped-call]
    if not isinstance(wrapper, PricingModel) or wrapper.spec is None or wrapper.table is None:
        raise ModelUnavailableError(f"{name} v{mv.version} is not a pricing model "
                                    f"({type(wrapper).__name__})")
    return wrapper, str(mv.version)
