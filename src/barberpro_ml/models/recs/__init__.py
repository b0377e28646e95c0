"""Implicit-feedback recommenders with one API: ``fit``, ``recommend``, ``similar_items``.

``fit(interactions)`` takes a DataFrame of ``user_id, item_id`` (any hashable ids) and optionally
``weight`` and ``timestamp``; ``recommend(user_ids, k=10, exclude_seen=True)`` returns a
DataFrame ``user_id, item_id, score, rank``; ``similar_items(item_ids, k)`` returns
``item_id, similar_item_id, score, rank``. Users unseen at fit get the popularity ranking of
their group (``user_groups``, e.g. neighborhood) or the global one.

Marketplace uses (``(data, as_of)`` functions): :func:`booking_interactions`,
:func:`booking_interactions_split` (out-of-time), :func:`next_service_recommendations`,
:func:`barber_recommendations`.
"""

from typing import TYPE_CHECKING

from barberpro_ml._lazy import attach

# The exports, imported on first use (see barberpro_ml._lazy): loading a registered model
# imports only the modules it needs.
if TYPE_CHECKING:
    from barberpro_ml.models.recs._base import (
        INTERACTION_COLUMNS,
        BaseRecommender,
        EncodedInteractions,
        as_id_index,
        check_interactions,
        encode_interactions,
        top_k,
    )
    from barberpro_ml.models.recs.ease import EASERecommender
    from barberpro_ml.models.recs.factorization import (
        ALSRecommender,
        BPRRecommender,
        implicit_available,
    )
    from barberpro_ml.models.recs.item_knn import ItemKNNRecommender
    from barberpro_ml.models.recs.marketplace import (
        barber_recommendations,
        booking_interactions,
        booking_interactions_split,
        customer_neighborhoods,
        next_service_recommendations,
        provider_ratings,
    )
    from barberpro_ml.models.recs.popularity import PopularityRecommender
else:
    __getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "INTERACTION_COLUMNS",
    "ALSRecommender",
    "BPRRecommender",
    "BaseRecommender",
    "EASERecommender",
    "EncodedInteractions",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "as_id_index",
    "barber_recommendations",
    "booking_interactions",
    "booking_interactions_split",
    "check_interactions",
    "customer_neighborhoods",
    "encode_interactions",
    "implicit_available",
    "next_service_recommendations",
    "provider_ratings",
    "top_k",
]
