"""What the analytics and provider routes read from the registry besides the customer models:
the verified forecast champion (``/financial-intelligence``), the pricing evidence behind the
revenue claims (``/revenue-optimization``) and the verified pricing champion's elasticities
(``/providers/{id}/marketplace-optimization``).

All are read through the same doors a consuming service uses: :func:`verify_champion` (a
champion whose bound gate result does not check out is not served) and the gate result bound
to the version (:func:`read_bound_gate`). A champion model is loaded once per version and
kept; every request checks the alias (one registry query) so a newly promoted one is served
from the next request on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mlflow import MlflowClient

from barberpro_ml.errors import ModelUnavailableError
from barberpro_ml.gates import ClaimVerdict
from barberpro_ml.registry import (
    ChampionVerification,
    alias_version,
    read_bound_gate,
    verify_champion,
)
from barberpro_ml.registry.forecast_model import ForecastModel, champion_forecast
from barberpro_ml.registry.pricing_model import PricingModel, champion_pricing

__all__ = ["FORECAST_MODEL", "PRICING_MODEL", "GateEvidence", "RegisteredEvidence",
           "ServedForecast", "ServedPricing"]

FORECAST_MODEL = "barberpro-forecast"
"""Registered name of the weekly forecast (:mod:`barberpro_ml.jobs.forecast`)."""
PRICING_MODEL = "barberpro-pricing"
"""Registered name of the pricing evaluation whose gate judges the ``pricing`` claims."""


@dataclass(frozen=True)
class ServedForecast:
    """A verified forecast champion: its version, its table and its bound verdicts."""

    version: str
    model: ForecastModel
    verdicts: tuple[ClaimVerdict, ...]


@dataclass(frozen=True)
class ServedPricing:
    """A verified pricing champion: its version, its elasticity table and its bound verdicts."""

    version: str
    model: PricingModel
    verdicts: tuple[ClaimVerdict, ...]


@dataclass(frozen=True)
class GateEvidence:
    """A registered model's ``@champion`` verification and the verdicts bound to a version."""

    champion: str | None
    """The version ``@champion`` points to now (None: no champion)."""
    verification: ChampionVerification
    verdicts: tuple[ClaimVerdict, ...]
    problems: tuple[str, ...]
    """Why the bound gate result could not be read (empty when ``verdicts`` were)."""


class RegisteredEvidence:
    """Reads (and caches per version) the forecast and pricing champions and their verdicts."""

    def __init__(self, tracking_uri: str, forecast_model: str = FORECAST_MODEL,
                 pricing_model: str = PRICING_MODEL) -> None:
        self.tracking_uri = tracking_uri
        self.forecast_model = forecast_model
        self.pricing_model = pricing_model
        self._lock = threading.Lock()
        self._forecast: ServedForecast | None = None
        self._pricing: ServedPricing | None = None

    def _client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def gate_evidence(self, name: str, version: str | None = None) -> GateEvidence:
        """``name``'s champion verification and the verdicts bound to ``version`` (default:
        the champion's); a few registry queries, nothing loaded or cached."""
        client = self._client()
        verification = verify_champion(name, client=client)
        champion = verification.version
        version = version or champion
        if version is None:
            return GateEvidence(champion=None, verification=verification, verdicts=(),
                                problems=(f"{name} has no @champion",))
        _, bound, _, problems = read_bound_gate(name, version, client)
        if bound is None:
            return GateEvidence(champion, verification, (),
                                tuple(problems or ["no bound gate result"]))
        return GateEvidence(champion, verification, tuple(bound.result.claims), tuple(problems))

    def forecast(self) -> ServedForecast:
        """The verified forecast champion.

        Raises
        ------
        ModelUnavailableError
            No champion, or one that is not verified (the reason is in the message).
        """
        version = alias_version(self.forecast_model, client=self._client())
        if version is None:
            raise ModelUnavailableError(
                f"no {self.forecast_model}@champion: run `barberpro-ml train forecast` (or "
                "`barberpro-ml pipeline`)")
        with self._lock:
            cached = self._forecast
            if cached is not None and cached.version == str(version):
                return cached
            verification = verify_champion(self.forecast_model, client=self._client())
            if not verification.verified or verification.version is None:
                raise ModelUnavailableError(verification.describe())
            model, loaded = champion_forecast(self.forecast_model,
                                              tracking_uri=self.tracking_uri)
            _, bound, _, problems = read_bound_gate(self.forecast_model, loaded, self._client())
            if bound is None or problems:
                raise ModelUnavailableError(f"{self.forecast_model} v{loaded}: "
                                            + "; ".join(problems or ["no bound gate result"]))
            served = ServedForecast(version=loaded, model=model,
                                    verdicts=tuple(bound.result.claims))
            self._forecast = served
            return served

    def pricing_verdicts(self) -> tuple[str | None, tuple[ClaimVerdict, ...], str | None]:
        """The verified pricing champion's version and bound verdicts, or why there are none.

        Returns
        -------
        tuple
            ``(version, verdicts, reason)``: ``reason`` is None when verdicts were read.
        """
        version = alias_version(self.pricing_model, client=self._client())
        if version is None:
            return None, (), (f"no {self.pricing_model}@champion: no pricing evaluation has "
                              "been registered yet (the price-elasticity work produces it)")
        verification = verify_champion(self.pricing_model, client=self._client())
        if not verification.verified:
            return str(version), (), verification.describe()
        _, bound, _, problems = read_bound_gate(self.pricing_model, version, self._client())
        if bound is None or problems:
            return str(version), (), "; ".join(problems or ["no bound gate result"])
        return str(version), tuple(bound.result.claims), None

    def pricing(self) -> ServedPricing:
        """The verified pricing champion: its elasticity table and the verdicts bound to it.

        Read like :meth:`forecast` (one alias query per call; loaded once per version).

        Raises
        ------
        ModelUnavailableError
            No champion, or one that is not verified, or whose bound gate result does not
            check out (the reason is in the message).
        """
        version = alias_version(self.pricing_model, client=self._client())
        if version is None:
            raise ModelUnavailableError(
                f"no {self.pricing_model}@champion: run `barberpro-ml train pricing` (or "
                "`barberpro-ml pipeline`); a pricing evaluation is promoted only when its "
                "blocking claims (the no-revenue-loss floor) pass")
        with self._lock:
            cached = self._pricing
            if cached is not None and cached.version == str(version):
                return cached
            verification = verify_champion(self.pricing_model, client=self._client())
            if not verification.verified or verification.version is None:
                raise ModelUnavailableError(verification.describe())
            model, loaded = champion_pricing(self.pricing_model,
                                             tracking_uri=self.tracking_uri)
            _, bound, _, problems = read_bound_gate(self.pricing_model, loaded, self._client())
            if bound is None or problems:
                raise ModelUnavailableError(f"{self.pricing_model} v{loaded}: "
                                            + "; ".join(problems or ["no bound gate result"]))
            served = ServedPricing(version=loaded, model=model,
                                   verdicts=tuple(bound.result.claims))
            self._pricing = served
            return served
