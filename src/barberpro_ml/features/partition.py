"""Customers in blocks: the partition of the event tables that blocked feature building
(:func:`~barberpro_ml.features.customer_feature_blocks`, and
:func:`~barberpro_ml.features.customer_features` itself on large populations) and blocked
scoring share."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import IdCoder, ns, to_as_of

__all__ = ["check_block_customers", "customer_blocks"]

_CUSTOMER_TABLES = ("bookings", "reviews", "interventions")


def check_block_customers(block_customers: object) -> int:
    """``block_customers`` as an ``int``; refused unless a positive integer."""
    if isinstance(block_customers, bool) or not isinstance(block_customers, int | np.integer) \
            or block_customers < 1:
        raise InputError(f"block_customers must be a positive integer, got {block_customers!r}")
    return int(block_customers)


def customer_blocks(data: MarketplaceData, as_of: object, block_customers: int
                    ) -> Iterator[MarketplaceData]:
    """The customers signed up by ``as_of``, ``block_customers`` at a time in id order, each
    block with its own bookings, reviews and interventions (the barber and service tables
    shared).

    What :func:`~barberpro_ml.features.customer_feature_blocks` and scoring's
    :func:`~barberpro_ml.scoring.snapshot.build_snapshot` (with its population inputs) run on.
    Rows keep their order in ``data``; events of customers who signed up after ``as_of`` are
    in no block; the tables are not validated again (:meth:`MarketplaceData.from_validated`).
    The partition is linear in the rows: each event's block is looked up from its customer's
    code, and the rows are grouped by block with a stable counting sort (NumPy's radix sort
    of small integers), so no table is sorted by customer id.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        Cut-off (naive UTC, or time-zone aware: converted).
    block_customers
        Customers per block (the last block may hold fewer).

    Yields
    ------
    MarketplaceData
        One block's tables.

    Raises
    ------
    InputError
        ``block_customers`` is not a positive integer, or an event refers to a customer who is
        not in ``data.customers`` (the tables break the data contract).

    Examples
    --------
    >>> [len(b.customers) for b in customer_blocks(data, "2024-06-30", 1000)]  # doctest: +SKIP
    [1000, 1000, 412]
    """
    size = check_block_customers(block_customers)
    stamp = to_as_of(as_of, to_utc=True)
    customers = data.customers
    ids = customers["customer_id"].to_numpy()
    signed = np.flatnonzero(ns(customers["signup_at"]) <= stamp.value)
    signed = signed[np.argsort(ids[signed], kind="stable")]
    n_blocks = -(-len(signed) // size)
    if n_blocks == 0:
        return
    coder = IdCoder.from_ids(ids)
    # block of each customer (by code); -1 for those not signed up by as_of. int16 when it
    # fits: NumPy's stable sort of 16-bit integers is a radix sort, linear in the rows.
    small = n_blocks < np.iinfo(np.int16).max
    block_of = np.full(len(coder), -1, dtype=np.int16 if small else np.int64)
    block_of[coder.encode(ids[signed], "customer")] = np.arange(len(signed)) // size
    parts = {}
    for name in _CUSTOMER_TABLES:
        frame = getattr(data, name)
        block = block_of[coder.encode(frame["customer_id"].to_numpy(), "customer")]
        order = np.argsort(block, kind="stable")
        # rows of block k: order[starts[k]:starts[k + 1]] (block -1 sorts first)
        starts = np.cumsum(np.bincount(block.astype(np.int64) + 1, minlength=n_blocks + 1))
        parts[name] = (frame, order, starts)
    for k in range(n_blocks):
        tables = {name: frame.take(order[starts[k]:starts[k + 1]])
                  for name, (frame, order, starts) in parts.items()}
        yield MarketplaceData.from_validated(
            customers=customers.iloc[signed[k * size:(k + 1) * size]],
            providers=data.providers, services=data.services, **tables)
