"""Fitted recommenders as MLflow pyfunc models: user ids in, the top-k out.

:class:`RecommenderModel` wraps any fitted :class:`~barberpro_ml.models.recs.BaseRecommender`.
A request is a DataFrame with one row per user:

* ``user_id`` (required): the user to recommend for. On the marketplace the ids are
  ``customer_id`` values, int64, so the signature says ``long``; a recommender fitted on string
  ids gets a ``string`` column instead (read off the fitted model's id index).
* ``k`` (optional, ``long`` >= 1): how many items for that user; default ``default_k`` (10).
* a group column (optional, ``string``; ``neighborhood`` by default): the user's group for the
  cold-start fallback. A user unseen at fit is given the popularity ranking of the training
  users of their group (this column first, else the group known at fit), else the global one.

The response has one row per recommended item: ``user_id, item_id, score, rank`` (rank 1 is
best), users in request order, ``item_id`` typed like ``user_id`` (``long`` for providers). The
items each user booked in the training data are left out (``exclude_seen``, on by default).

As for :mod:`barberpro_ml.registry.models` (which says what ships with a model and what a
consumer installs), the model is logged "from code" (``_recs_pyfunc_entry.py``) with the
recommender as a cloudpickle artifact, a readable JSON spec, the package source, derived
requirements, an explicit signature and an input example; requests are checked by MLflow's
signature enforcement and again inside ``predict`` (so the in-memory wrapper refuses the same
input), with :class:`~barberpro_ml.registry.models.ModelInputError` naming the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec
from pydantic import BaseModel, ConfigDict, Field
from sklearn.utils.validation import check_is_fitted

from barberpro_ml.models.recs._base import BaseRecommender
from barberpro_ml.registry.models import (
    CHALLENGER,
    CHAMPION,
    ModelInputError,
    _log_from_code,
    _read_logged,
    register,
)

if TYPE_CHECKING:
    from barberpro_ml.gates import ChampionComparison

__all__ = [
    "RECOMMENDATION_OUTPUT",
    "RecommenderModel",
    "RecommenderSpec",
    "log_and_register_recommender",
    "log_recommender",
    "recs_champion_comparison",
]

IdKind = Literal["long", "string"]
RECOMMENDATION_OUTPUT = ("user_id", "item_id", "score", "rank")
_ENTRY = Path(__file__).with_name("_recs_pyfunc_entry.py")
_NUMERIC = {"integer", "floating", "mixed-integer-float", "empty"}


class RecommenderSpec(BaseModel):
    """What :class:`RecommenderModel` needs besides the recommender (a JSON artifact)."""

    model_config = ConfigDict(frozen=True)

    user_id_kind: IdKind
    item_id_kind: IdKind
    group_column: str | None = "neighborhood"
    default_k: int = Field(10, ge=1)
    max_k: int = Field(100, ge=1)
    exclude_seen: bool = True
    n_items: int = Field(ge=1)

    def signature(self) -> ModelSignature:
        """``user_id`` required, ``k`` and the group column optional; the top-k as output."""
        inputs: list[ColSpec | TensorSpec] = [ColSpec(self.user_id_kind, "user_id"),
                                              ColSpec("long", "k", required=False)]
        if self.group_column:
            inputs.append(ColSpec("string", self.group_column, required=False))
        outputs: list[ColSpec | TensorSpec] = [
            ColSpec(self.user_id_kind, "user_id"), ColSpec(self.item_id_kind, "item_id"),
            ColSpec("double", "score"), ColSpec("long", "rank")]
        return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))

    def prepare(self, request: Any) -> tuple[pd.Index, pd.Series, pd.Series | None]:
        """Check a request; return the users (request order), ``k`` per user, their groups.

        Raises
        ------
        ModelInputError
            No ``user_id`` column, missing or mistyped ids, a ``k`` that is not an integer in
            ``[1, max_k]``; one message naming every problem.
        """
        frame = request if isinstance(request, pd.DataFrame) else pd.DataFrame(request)
        if "user_id" not in frame.columns:
            raise ModelInputError(f"request refused: missing column 'user_id' (got columns "
                                  f"{list(frame.columns)}); send one row per user")
        problems: list[str] = []
        ids = _ids(frame["user_id"], self.user_id_kind, problems)
        ks = pd.Series(self.default_k, index=frame.index, dtype="int64")
        if "k" in frame.columns:
            ks = _ks(frame["k"], self.default_k, self.max_k, problems)
        groups = None
        if self.group_column and self.group_column in frame.columns:
            raw = frame[self.group_column]
            inferred = pd.api.types.infer_dtype(raw, skipna=True)
            if inferred not in {"string", "empty"}:
                problems.append(f"column {self.group_column!r} must be string, got {raw.dtype} "
                                f"({inferred}), e.g. {_examples(raw)}")
            else:
                groups = raw
        if problems:
            raise ModelInputError("request refused: " + "; ".join(problems))
        assert ids is not None
        # A user listed twice gets the larger k (the rows describe one ranking).
        k_of_user = pd.Series(ks.to_numpy(), index=pd.Index(ids, tupleize_cols=False)) \
            .groupby(level=0, sort=False).max()
        users = pd.Index(k_of_user.index, tupleize_cols=False)
        user_groups = None
        if groups is not None:
            named = pd.Series(groups.to_numpy(dtype=object), index=pd.Index(ids,
                                                                            tupleize_cols=False))
            named = named[named.notna()]
            user_groups = named[~named.index.duplicated(keep="first")]
        return users, k_of_user, user_groups


def _examples(values: pd.Series, k: int = 3) -> str:
    return repr(values.dropna().unique()[:k].tolist())


def _ids(col: pd.Series, kind: IdKind, problems: list[str]) -> pd.Index | None:
    missing = int(col.isna().sum())
    if missing:
        problems.append(f"column 'user_id' has {missing:,} missing value(s)")
        return None
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if kind == "string":
        if inferred not in {"string", "empty"}:
            problems.append(f"column 'user_id' must be string, got {col.dtype} ({inferred}), "
                            f"e.g. {_examples(col)}")
            return None
        return pd.Index(col.astype(str).to_numpy(dtype=object), tupleize_cols=False)
    if pd.api.types.is_bool_dtype(col.dtype) or inferred not in _NUMERIC:
        problems.append(f"column 'user_id' must be long (int64 customer ids), got {col.dtype} "
                        f"({inferred}), e.g. {_examples(col)}")
        return None
    if pd.api.types.is_integer_dtype(col.dtype):
        as_int: pd.Index = pd.Index(col.to_numpy(dtype=np.int64))
        return as_int
    numbers = pd.to_numeric(col).to_numpy(dtype=np.float64)
    # JSON sends integers as floats; accept them only when nothing is lost.
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        problems.append(f"column 'user_id' must hold integers, got {int(bad.sum()):,} "
                        f"non-integral value(s), e.g. {numbers[bad][:3].tolist()}")
        return None
    return pd.Index(numbers.astype(np.int64))


def _ks(col: pd.Series, default: int, max_k: int, problems: list[str]) -> pd.Series:
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if pd.api.types.is_bool_dtype(col.dtype) or inferred not in _NUMERIC:
        problems.append(f"column 'k' must be long, got {col.dtype} ({inferred}), "
                        f"e.g. {_examples(col)}")
        return pd.Series(default, index=col.index, dtype="int64")
    numbers = pd.to_numeric(col).astype("float64").fillna(float(default)).to_numpy()
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers)) | (numbers < 1) \
        | (numbers > max_k)
    if bad.any():
        problems.append(f"column 'k' must be an integer in [1, {max_k}], got {int(bad.sum()):,} "
                        f"value(s) outside, e.g. {numbers[bad][:3].tolist()}")
        return pd.Series(default, index=col.index, dtype="int64")
    return pd.Series(numbers.astype(np.int64), index=col.index)


def _id_kind(index: pd.Index, what: str) -> IdKind:
    if pd.api.types.is_integer_dtype(index.dtype):
        return "long"
    if pd.api.types.infer_dtype(index, skipna=False) == "string":
        return "string"
    raise TypeError(f"the recommender's {what} ids are {index.dtype} "
                    f"({pd.api.types.infer_dtype(index, skipna=False)}), e.g. "
                    f"{index[:3].tolist()}; a model signature carries int64 or string ids only")


class RecommenderModel(PythonModel):
    """Pyfunc wrapper of a fitted recommender: user ids in, ``user_id, item_id, score, rank``.

    Parameters
    ----------
    recommender
        A fitted recommender. ``None`` when MLflow builds the wrapper from the logged
        artifacts (``load_context`` fills it).
    spec
        Id types, group column, default and largest ``k``.

    Examples
    --------
    >>> from barberpro_ml.models.recs import ItemKNNRecommender
    >>> train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 11, 10]})
    >>> wrapper = RecommenderModel.from_recommender(ItemKNNRecommender(shrink=0).fit(train))
    >>> wrapper.predict(None, pd.DataFrame({"user_id": [3], "k": [1]}))[["user_id", "item_id"]]
       user_id  item_id
    0        3       11
    """

    def __init__(self, recommender: BaseRecommender | None = None,
                 spec: RecommenderSpec | None = None) -> None:
        self.recommender = recommender
        self.spec = spec

    @classmethod
    def from_recommender(cls, recommender: BaseRecommender, *,
                         group_column: str | None = "neighborhood", default_k: int = 10,
                         max_k: int = 100, exclude_seen: bool = True) -> RecommenderModel:
        """Wrap a fitted recommender, reading the id types off its id indexes."""
        if not isinstance(recommender, BaseRecommender):
            raise TypeError(f"expected a fitted barberpro_ml recommender, got "
                            f"{type(recommender).__name__}")
        check_is_fitted(recommender, "item_index_")
        spec = RecommenderSpec(user_id_kind=_id_kind(recommender.user_index_, "user"),
                               item_id_kind=_id_kind(recommender.item_index_, "item"),
                               group_column=group_column, default_k=default_k, max_k=max_k,
                               exclude_seen=exclude_seen, n_items=recommender.n_items_)
        return cls(recommender, spec)

    def load_context(self, context: Any) -> None:
        """Read the recommender and the spec from the model's artifacts (MLflow calls this)."""
        if self.recommender is not None:
            return
        self.recommender, self.spec = _read_logged(context, "recommender", RecommenderSpec)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The top ``k`` items of every requested user.

        Raises
        ------
        ModelInputError
            A missing ``user_id`` column, missing or mistyped ids, a bad ``k`` or group.
        """
        if self.recommender is None or self.spec is None:
            raise RuntimeError("RecommenderModel has no recommender: build it with "
                               "from_recommender or load it with mlflow.pyfunc.load_model")
        users, k_of_user, groups = self.spec.prepare(model_input)
        if len(users) == 0:
            return self._typed(pd.DataFrame({c: [] for c in RECOMMENDATION_OUTPUT}))
        recs = self.recommender.recommend(users, k=int(k_of_user.max()),
                                          exclude_seen=self.spec.exclude_seen,
                                          user_groups=groups)
        wanted = k_of_user.reindex(pd.Index(recs["user_id"].array, tupleize_cols=False))
        recs = recs.loc[recs["rank"].to_numpy() <= wanted.to_numpy()].reset_index(drop=True)
        return self._typed(recs)

    def _typed(self, recs: pd.DataFrame) -> pd.DataFrame:
        assert self.spec is not None
        types: dict[str, Any] = {"long": np.int64, "string": str}
        return pd.DataFrame({
            "user_id": recs["user_id"].astype(types[self.spec.user_id_kind]),
            "item_id": recs["item_id"].astype(types[self.spec.item_id_kind]),
            "score": recs["score"].astype("float64"),
            "rank": recs["rank"].astype("int64"),
        })


def log_recommender(
    recommender: BaseRecommender,
    *,
    name: str = "model",
    group_column: str | None = "neighborhood",
    default_k: int = 10,
    max_k: int = 100,
    exclude_seen: bool = True,
    example_users: int = 3,
    ship_code: bool = True,
    extra_pip_requirements: list[str] | None = None,
) -> ModelInfo:
    """Log a fitted recommender as an MLflow pyfunc model (in the active run, if any).

    Parameters
    ----------
    recommender
        A fitted :class:`~barberpro_ml.models.recs.BaseRecommender` (ids int64 or str).
    name
        Name of the logged model within the run.
    group_column
        Name of the optional request column with the user's group (cold-start fallback);
        ``None`` for none.
    default_k, max_k
        ``k`` when the request has no ``k`` column, and the largest ``k`` accepted.
    exclude_seen
        Leave out the items each user had in the training data.
    example_users
        Training users in the input example (plus one user id the model never saw).
    ship_code
        Ship the ``barberpro_ml`` source with the model (loads without the package).
    extra_pip_requirements
        Added to the derived requirements (what loading and predicting the model imports).

    Returns
    -------
    mlflow.models.model.ModelInfo

    Examples
    --------
    >>> with mlflow.start_run():                                       # doctest: +SKIP
    ...     info, version = log_and_register_recommender(model, "barberpro-recs")
    """
    wrapper = RecommenderModel.from_recommender(recommender, group_column=group_column,
                                                default_k=default_k, max_k=max_k,
                                                exclude_seen=exclude_seen)
    assert wrapper.spec is not None
    example = _input_example(recommender, wrapper.spec, example_users)
    wrapper.predict(None, example)  # fail here with our message, not in MLflow's validation
    return _log_from_code(
        _ENTRY, RecommenderModel, name=name,
        model=("recommender", "recommender.pkl", recommender),
        spec=("spec", "recommender_spec.json", wrapper.spec), signature=wrapper.spec.signature(),
        example=example, ship_code=ship_code, extra_pip_requirements=extra_pip_requirements)


def _input_example(recommender: BaseRecommender, spec: RecommenderSpec,
                   n_users: int) -> pd.DataFrame:
    users = list(recommender.user_index_[:max(n_users, 1)])
    # One id the model never saw, to show the cold-start fallback in the example.
    if spec.user_id_kind == "long":
        users.append(int(np.max(recommender.user_index_.to_numpy(dtype=np.int64))) + 1)
    else:
        users.append("unseen-user")
    example = pd.DataFrame({"user_id": pd.array(users, dtype="int64" if spec.user_id_kind
                                                == "long" else "str"),
                            "k": np.full(len(users), spec.default_k, dtype=np.int64)})
    groups = getattr(recommender, "user_groups_", None)
    if spec.group_column and groups is not None and len(groups):
        known = groups.reindex(pd.Index(users[:-1], tupleize_cols=False))
        fill = str(groups.iloc[0])
        example[spec.group_column] = [str(g) if pd.notna(g) else fill for g in known] + [fill]
    return example


def log_and_register_recommender(
    recommender: BaseRecommender, name: str, *, alias: str | None = CHALLENGER,
    tags: dict[str, str] | None = None, **log_kwargs: Any,
) -> tuple[ModelInfo, ModelVersion]:
    """:func:`log_recommender` then :func:`~barberpro_ml.registry.register` (``challenger``).

    Parameters
    ----------
    recommender
        The fitted recommender.
    name
        Registered model name (``barberpro-recs``).
    alias, tags
        Alias and version tags of the new version.
    **log_kwargs
        Passed to :func:`log_recommender`.

    Returns
    -------
    (ModelInfo, ModelVersion)
    """
    info = log_recommender(recommender, **log_kwargs)
    return info, register(info.model_uri, name, alias=alias, tags=tags)


def recs_champion_comparison(
    name: str, train: pd.DataFrame, test: pd.DataFrame, challenger_per_user: pd.Series, *,
    metric: str = "ndcg@10", user_groups: Any = None, n_bootstrap: int = 1000, seed: int = 0,
    alias: str = CHAMPION, margin: float | None = None,
) -> ChampionComparison | None:
    """Evaluate the current champion on the challenger's test users, for the gate.

    The champion's recommender is taken out of its pyfunc and ranked on the same ``train`` /
    ``test`` split as the challenger (its training items left out the same way), so the two
    per-user metrics are paired; the gate compares their means with the ``mean`` paired
    bootstrap (``settings.non_inferiority.recs`` in the claims file).

    Parameters
    ----------
    name
        Registered model name.
    train, test
        The challenger's interaction split.
    challenger_per_user
        The challenger's per-user metric (``report.per_user[metric]``, indexed by user id).
    metric
        The per-user ranking metric compared.
    user_groups
        ``user_id -> group`` for the cold-start fallback.

    Returns
    -------
    ChampionComparison or None
        ``None`` when there is no champion yet.

    Raises
    ------
    TypeError
        When the champion is not a :class:`RecommenderModel`.
    """
    # Imported here, not at the top: a loaded model imports this module, and needs neither
    # the evaluation nor the gates (nor their dependencies) to predict.
    from barberpro_ml.evaluation.ranking import evaluate_recommender
    from barberpro_ml.gates import ChampionComparison
    from barberpro_ml.registry.promotion import alias_version, load_champion

    if alias_version(name, alias) is None:
        return None
    model, mv = load_champion(name, alias=alias)
    python_model = model.unwrap_python_model()  # type: ignore[no-untyped-call]
    if not isinstance(python_model, RecommenderModel) or python_model.recommender is None:
        raise TypeError(f"the {alias} of {name!r} (v{mv.version}) is a "
                        f"{type(python_model).__name__}, not a RecommenderModel")
    cut = int(metric.rsplit("@", 1)[1])
    champion = evaluate_recommender(python_model.recommender, train, test, k=cut, n_bootstrap=0,
                                    baseline=None, user_groups=user_groups,
                                    keep_replicates=False)
    assert champion.per_user is not None
    champion_values = champion.per_user[metric].reindex(challenger_per_user.index)
    if champion_values.isna().any():
        raise ValueError("the champion was evaluated on other users than the challenger; pass "
                         "the challenger's own train/test split")
    values = challenger_per_user.to_numpy(dtype=np.float64)
    return ChampionComparison(
        y_true=np.zeros(len(values)), challenger=values,
        champion=champion_values.to_numpy(dtype=np.float64), metric="mean", margin=margin,
        champion_version=str(mv.version), n_bootstrap=n_bootstrap, seed=seed)
