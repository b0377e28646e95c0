"""Feature frames as plain numbers, for models that take a float matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["model_matrix"]


def model_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """Features as numbers for the tree learners: categoricals by their codes (NaN kept).

    Categories come from the whole customers table (see
    :func:`barberpro_ml.features.customer_features`), so a code means the same at every cut-off.

    Parameters
    ----------
    features
        Feature columns (numbers, flags or categoricals).

    Returns
    -------
    pandas.DataFrame
        The same index and columns, every column ``float64``; a missing category is NaN.

    Examples
    --------
    >>> frame = pd.DataFrame({"visits": [1, 2, 3],
    ...                       "channel": pd.Categorical(["web", None, "app"],
    ...                                                 categories=["app", "web"])})
    >>> model_matrix(frame)["channel"].tolist()
    [1.0, nan, 0.0]
    """
    out = features.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            codes = out[name].cat.codes.astype(np.float64)
            out[name] = codes.where(codes >= 0, np.nan)
    return out.astype(np.float64)
