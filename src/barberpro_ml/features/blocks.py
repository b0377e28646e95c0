"""Customer features one block of customers at a time, for populations whose features (or
whose working arrays) should not be held whole.

A block is ``block_customers`` customers in id order with their own bookings, reviews and
interventions (:func:`customer_blocks`); the one input that reads other customers' events,
the review totals per barber (:func:`~barberpro_ml.features.provider_review_totals`), is
computed once from every review and handed to each block. Each block then goes through
:func:`~barberpro_ml.features.customer_features` itself: there is no second implementation,
and the blocks, concatenated, equal the whole population's features exactly
(``tests/test_features_blocks.py``). Scoring's
:meth:`~barberpro_ml.scoring.CustomerScorer.score_blocks` uses the same partition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features._common import check_windows, to_as_of
from barberpro_ml.features.catalog import DEFAULT_WINDOWS, customer_feature_specs
from barberpro_ml.features.customer import customer_features, provider_review_totals
from barberpro_ml.features.partition import check_block_customers, customer_blocks

__all__ = ["BLOCK_CUSTOMERS", "customer_blocks", "customer_feature_blocks",
           "feature_arrow_schema"]

BLOCK_CUSTOMERS = 200_000
"""Default customers per block of :func:`customer_feature_blocks`: large enough that the
per-block passes over the small tables (barbers, services) cost nothing, small enough that a
block's working arrays stay a few hundred MiB."""

# Categorical features whose categories are ids (integers), not labels.
_ID_CATEGORIES = frozenset({"main_service"})


def customer_feature_blocks(data: MarketplaceData, as_of: object, *,
                            block_customers: int = BLOCK_CUSTOMERS,
                            windows: Sequence[int] = DEFAULT_WINDOWS,
                            provider_reviews: pd.DataFrame | None = None
                            ) -> Iterator[pd.DataFrame]:
    """:func:`~barberpro_ml.features.customer_features` of every customer, one block of
    customers at a time: the memory beyond the event tables grows with the block, not the
    population.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off, as for :func:`~barberpro_ml.features.customer_features` (naive UTC,
        inclusive).
    block_customers
        Customers per block (default :data:`BLOCK_CUSTOMERS`), in customer-id order.
    windows
        Look-back windows in days, as for :func:`~barberpro_ml.features.customer_features`.
    provider_reviews
        :func:`~barberpro_ml.features.provider_review_totals` of every customer's reviews at
        ``as_of``; default: computed once from ``data.reviews`` before the first block.

    Yields
    ------
    pandas.DataFrame
        One block's features: its rows of ``customer_features(data, as_of)``, in id order,
        with the same columns, dtypes and categories. Concatenated, the blocks equal it. A
        population that fits one block is one block (an empty frame when nobody had signed
        up by ``as_of``).

    Raises
    ------
    InputError
        ``block_customers`` is not a positive integer, or bad ``windows``.
    ValueError
        ``as_of`` is not a naive timestamp.

    Examples
    --------
    >>> for block in customer_feature_blocks(data, "2024-06-30",
    ...                                      block_customers=100_000):  # doctest: +SKIP
    ...     block.to_parquet(f"features-{block.index[0]}.parquet")
    """
    size = check_block_customers(block_customers)
    stamp = to_as_of(as_of)
    ws = check_windows(windows)
    if provider_reviews is None:
        provider_reviews = provider_review_totals(data.reviews, stamp)
    total = int((data.customers["signup_at"] <= stamp).sum())
    # one block: the tables themselves, not a copy of them
    blocks = iter([data]) if size >= total else customer_blocks(data, stamp, size)
    for block in blocks:
        yield customer_features(block, stamp, windows=ws, provider_reviews=provider_reviews)


def feature_arrow_schema(windows: Sequence[int] = DEFAULT_WINDOWS) -> Any:
    """The Arrow schema of :func:`~barberpro_ml.features.customer_features`' rows, derived
    from the feature catalogue, declared before any block is computed.

    ``customer_id`` (``int64``, the index) first, then every catalogue column in catalogue
    order: ``float64``, ``int64`` and ``int8`` as such; categoricals with string labels as
    dictionary columns (read back as the same categoricals); ``main_service``, whose
    categories are service ids, as the nullable ``int64`` service id (Parquet keeps
    dictionaries of strings only; pandas reads it back as ``Int64``, and
    ``.astype(features["main_service"].dtype)`` restores the categorical).

    Parameters
    ----------
    windows
        Look-back windows in days, as for :func:`~barberpro_ml.features.customer_features`.

    Returns
    -------
    pyarrow.Schema
        The schema, with the pandas metadata that restores the ``customer_id`` index.

    Examples
    --------
    >>> feature_arrow_schema().field("main_service").type
    DataType(int64)
    >>> feature_arrow_schema().field("neighborhood").type
    DictionaryType(dictionary<values=string, indices=int32, ordered=0>)
    """
    import pyarrow as pa

    fields = [pa.field("customer_id", pa.int64(), nullable=False)]
    pandas_dtypes: dict[str, str] = {}
    for spec in customer_feature_specs(windows):
        if spec.name in _ID_CATEGORIES:
            fields.append(pa.field(spec.name, pa.int64()))
            pandas_dtypes[spec.name] = "Int64"
        elif spec.dtype == "category":
            fields.append(pa.field(spec.name, pa.dictionary(pa.int32(), pa.string())))
            pandas_dtypes[spec.name] = "category"
        else:
            fields.append(pa.field(spec.name, pa.type_for_alias(spec.dtype)))
            pandas_dtypes[spec.name] = spec.dtype
    # the pandas metadata of an empty frame of these dtypes: readers restore the customer_id
    # index and the nullable service id
    empty = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in pandas_dtypes.items()},
                         index=pd.Index([], dtype=np.int64, name="customer_id"))
    return pa.schema(fields).with_metadata(
        pa.Schema.from_pandas(empty, preserve_index=True).metadata)
