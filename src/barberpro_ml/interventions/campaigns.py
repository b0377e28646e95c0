"""The randomised campaigns as a modelling table, and their sample-ratio check.

:func:`campaign_frame` turns every targeted row of ``interventions`` into one modelling row:
the customer's features as of just before the offer was sent (one second before ``sent_at``,
so the campaign's own row is not yet known: its ``treated`` flag would otherwise leak into
``last_intervention_treated``), the arm, the outcome (churned: no completed visit in
``(sent_at, sent_at + horizon_days]``, as :func:`barberpro_ml.evaluation.uplift.campaign_effects`)
and the propensity the randomisation used.

:func:`sample_ratio_mismatch` checks every campaign's arm sizes against the designed split
with Pearson's chi-square test [1]_: a campaign whose split is implausible under its design
(``p < alpha``) had its randomisation broken (a bug in the assignment, customers dropped from
one arm), and no effect measured on it can be trusted; it is flagged, and
:func:`campaign_frame` refuses it unless told otherwise.

References
----------
.. [1] Fabijan, A., Gupchup, J., Gupta, S., Omhover, J., Qin, W., Vermeer, L. & Dmitriev, P.
   (2019). Diagnosing sample ratio mismatch in online controlled experiments. *KDD '19*,
   2156-2164.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from scipy.stats import chi2

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation.uplift import offer_outcomes
from barberpro_ml.features import customer_features, model_matrix
from barberpro_ml.features._common import AsOf, to_as_of

__all__ = ["DEFAULT_SRM_ALPHA", "campaign_frame", "model_matrix", "sample_ratio_mismatch"]

DEFAULT_SRM_ALPHA: Final = 0.001
"""Significance level of the sample-ratio-mismatch test (the usual 0.001: the check runs on
every campaign, and a false alarm discards a whole experiment)."""

_ONE_SECOND = pd.Timedelta(seconds=1)


def sample_ratio_mismatch(interventions: pd.DataFrame, *, treat_fraction: float = 0.5,
                          alpha: float = DEFAULT_SRM_ALPHA) -> pd.DataFrame:
    """Chi-square test of every campaign's arm sizes against the designed split.

    Parameters
    ----------
    interventions
        The ``interventions`` table (``campaign``, ``treated``).
    treat_fraction
        The designed share of the treated arm, in (0, 1).
    alpha
        Significance level; a campaign with ``p_value < alpha`` is flagged.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``campaign``: ``n_treated``, ``n_control``, ``expected_treated``,
        ``chi_square``, ``p_value`` and ``mismatch`` (bool).

    Examples
    --------
    >>> iv = pd.DataFrame({"campaign": ["a"] * 100 + ["b"] * 100,
    ...                    "treated": [True] * 50 + [False] * 50 + [True] * 80 + [False] * 20})
    >>> sample_ratio_mismatch(iv)["mismatch"].tolist()
    [False, True]
    """
    if not 0 < treat_fraction < 1:
        raise ValueError(f"treat_fraction: expected a share in (0, 1), got {treat_fraction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    missing = [c for c in ("campaign", "treated") if c not in interventions.columns]
    if missing:
        raise InputError(f"interventions: missing column(s) {missing}")
    campaign = interventions["campaign"].astype(str)
    treated = interventions["treated"].astype(bool)
    n_treated = treated.groupby(campaign).sum().astype(np.int64)
    n = campaign.value_counts().reindex(n_treated.index).astype(np.int64)
    n_control = n - n_treated
    expected_t = n * treat_fraction
    expected_c = n * (1 - treat_fraction)
    stat = (n_treated - expected_t) ** 2 / expected_t + (n_control - expected_c) ** 2 / expected_c
    p_value = chi2.sf(stat.to_numpy(dtype=np.float64), df=1)
    return pd.DataFrame({
        "n_treated": n_treated, "n_control": n_control, "expected_treated": expected_t,
        "chi_square": stat, "p_value": p_value, "mismatch": p_value < alpha,
    }).rename_axis("campaign")


def campaign_frame(data: MarketplaceData, as_of: AsOf | None = None, *,
                   horizon_days: int = 90, treat_fraction: float = 0.5,
                   srm_alpha: float = DEFAULT_SRM_ALPHA,
                   allow_mismatch: bool = False) -> pd.DataFrame:
    """One modelling row per targeted customer of every closed campaign.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        Cut-off (default: ``data.observation_end``); campaigns whose outcome windows have not
        closed by then are left out, as in :func:`~barberpro_ml.evaluation.campaign_effects`.
    horizon_days
        Outcome window after ``sent_at``.
    treat_fraction
        The designed treated share: the known propensity, and the split the sample-ratio
        check tests against.
    srm_alpha, allow_mismatch
        A campaign failing :func:`sample_ratio_mismatch` is refused (InputError naming it)
        unless ``allow_mismatch``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``intervention_id``: ``customer_id``, ``campaign`` (str), ``sent_at``,
        ``treated`` (int8), ``churned`` (int8), ``propensity``, then the customer features
        (numeric, :func:`model_matrix`) as of one second before ``sent_at``; with
        ``attrs["features"]`` listing the feature columns and ``attrs["srm"]`` the rows of
        :func:`sample_ratio_mismatch` as records.

    Raises
    ------
    InputError
        A campaign's split fails the sample-ratio check.
    NotEnoughDataError
        No campaign's outcome window has closed.
    """
    stamp = to_as_of(data.observation_end if as_of is None else as_of)
    outcomes = offer_outcomes(data, stamp, horizon_days=horizon_days)
    if outcomes.empty:
        raise NotEnoughDataError(f"no campaign outcome is known at as_of={stamp}")
    srm = sample_ratio_mismatch(outcomes, treat_fraction=treat_fraction, alpha=srm_alpha)
    bad = srm.index[srm["mismatch"]].tolist()
    if bad and not allow_mismatch:
        rows = srm.loc[bad, ["n_treated", "n_control", "p_value"]]
        raise InputError(
            f"interventions: {len(bad)} campaign(s) fail the sample-ratio check against the "
            f"designed treated share {treat_fraction} (chi-square p < {srm_alpha}): "
            f"{rows.to_dict('index')}; their randomisation cannot be trusted. Fix the "
            "assignment, drop them, or pass allow_mismatch=True to model them anyway.")
    frames = []
    feature_names: list[str] = []
    sent = outcomes["sent_at"].to_numpy(dtype="datetime64[ns]")
    for sent_at in np.unique(sent):
        rows = outcomes[sent == sent_at]
        features = model_matrix(customer_features(data, pd.Timestamp(sent_at) - _ONE_SECOND))
        feature_names = list(features.columns)
        block = rows.join(features, on="customer_id")
        frames.append(block)
    frame = pd.concat(frames).sort_index()
    frame["propensity"] = treat_fraction
    front = ["customer_id", "campaign", "sent_at", "treated", "churned", "propensity"]
    frame = pd.DataFrame(frame[front + feature_names])
    frame.attrs["features"] = feature_names
    # plain records, not a DataFrame: pandas compares attrs when frames are combined
    frame.attrs["srm"] = srm.reset_index().to_dict("records")
    return frame
