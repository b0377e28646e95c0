"""Fitted estimators as MLflow pyfunc models: feature schema, signature, logging, registration.

Any fitted scikit-learn-style estimator (``ChurnClassifier``, an LTV regressor, a plain
scikit-learn pipeline) is wrapped in :class:`EstimatorModel`, a :class:`mlflow.pyfunc.PythonModel`
that holds the estimator and the :class:`FeatureSchema` of the frame it was trained on.
``predict`` returns one float per row: the probability of the positive class
(``output="proba"``, e.g. the churn probability) or the estimator's prediction
(``output="predict"``, e.g. a lifetime value).

The logged model carries an explicit :class:`~mlflow.models.ModelSignature` built from the
training frame (pandas categoricals become ``string`` columns, converted back to the training
categories inside ``predict``) and an input example. Requests are checked twice: by MLflow's
signature enforcement when loaded with :func:`mlflow.pyfunc.load_model`, and by
:meth:`FeatureSchema.prepare` inside ``predict`` (so the in-memory wrapper refuses the same
bad input), each naming the offending column(s).

What ships with a model, and what loading it needs
---------------------------------------------------
A model is logged "from code" (MLflow's recommended form): the entry script
``_pyfunc_entry.py`` builds the wrapper, the estimator is an artifact (cloudpickle) and the
schema a readable JSON artifact, and the ``barberpro_ml`` source ships with the model
(``code_paths``; MLflow puts it first on ``sys.path`` when it loads the model). The package's
``__init__`` modules import their exports on first use (:mod:`barberpro_ml._lazy`), so loading
imports the wrapper and the estimator's own modules only: not the data contract, evaluation,
gates, jobs, command line or service, nor their dependencies.

The model's ``requirements.txt`` is derived, not kept by hand
(:mod:`barberpro_ml.registry._requirements`): every distribution that loading the model and
predicting its input example imports is pinned to its installed version (observed while a fresh
wrapper unpickles the estimator and predicts, plus the module-level imports of the entry script
and of the package modules that loading reaches, read from their source), and MLflow adds its
own pin. A model whose estimator refers to a module defined only in the logging process is not
logged (a ``RuntimeError`` naming the module). For the churn model the file reads
``mlflow, cloudpickle, numpy, pandas, pydantic, scikit-learn, scipy, xgboost`` (each ``==`` the
training environment's version); a consumer installs ``mlflow`` and that file
(``mlflow.pyfunc.get_model_dependencies(uri)`` downloads it) and calls
``mlflow.pyfunc.load_model("models:/barberpro-churn@champion")`` without installing this
package (checked for every family in a new virtual environment by
``tests/test_standalone_models.py``).

Versions logged before requirements were derived list every dependency of the package (the
training, command-line and service stacks too) and load as they did. Inside the package a
loaded model uses the already imported ``barberpro_ml``, not the copy shipped with it.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar

import cloudpickle  # type: ignore[import-untyped]
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.errors import InputError
from barberpro_ml.registry._requirements import PACKAGE_DIR, derive_requirements

OutputKind = Literal["proba", "predict"]
ColumnKind = Literal["double", "long", "boolean", "string", "category", "datetime"]

CHALLENGER = "challenger"
CHAMPION = "champion"
"""The two registry aliases; ``champion`` is moved only by
:func:`~barberpro_ml.registry.promote`."""
CLV_PARAMS_ARTIFACT = "clv/clv_params.json"
"""Run artifact of the LTV job: the BG/NBD and Gamma-Gamma parameters, at full precision.

Versions registered with ``clv_params`` carry them inside the model (:class:`ClvParams` in
:attr:`PyfuncSpec.clv_params`); the scoring API reads this run artifact only as a fallback for
LTV versions registered before that."""
_ENTRY = Path(__file__).with_name("_pyfunc_entry.py")
_SIGNATURE_TYPES: dict[ColumnKind, str] = {
    "double": "double", "long": "long", "boolean": "boolean", "string": "string",
    "category": "string", "datetime": "datetime",
}
_NUMERIC_INFERRED = {"floating", "integer", "mixed-integer-float", "decimal", "empty"}


class ModelInputError(InputError):
    """A scoring request that does not match the model's feature schema."""


class FeatureColumn(BaseModel):
    """One input column of a model: its kind and, for categoricals, the training categories."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ColumnKind
    categories: list[Any] | None = None
    ordered: bool = False
    had_missing: bool = False
    text_dtype: Literal["str", "object"] | None = None


class FeatureSchema(BaseModel):
    """The columns (order, kinds, categories) of the frame a model was trained on.

    Examples
    --------
    >>> X = pd.DataFrame({"visits": [3, 1], "channel": pd.Categorical(["web", "app"])})
    >>> schema = FeatureSchema.from_frame(X)
    >>> [(c.name, c.kind) for c in schema.columns]
    [('visits', 'long'), ('channel', 'category')]
    >>> list(schema.prepare(pd.DataFrame({"channel": ["app"], "visits": [2]}))["channel"]
    ...      .cat.categories)
    ['app', 'web']
    """

    model_config = ConfigDict(frozen=True)

    columns: list[FeatureColumn] = Field(min_length=1)

    @property
    def names(self) -> list[str]:
        """Column names in training order."""
        return [c.name for c in self.columns]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FeatureSchema:
        """Read the schema off a training frame.

        Raises
        ------
        TypeError
            For a column of a kind a signature cannot carry (complex, timedelta, mixed objects),
            naming the column(s).
        ValueError
            For duplicate or non-string column names.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected the training features as a pandas DataFrame, "
                            f"got {type(frame).__name__}")
        names = list(frame.columns)
        if not all(isinstance(n, str) for n in names):
            bad = [n for n in names if not isinstance(n, str)][:5]
            raise ValueError(f"feature column names must be strings; got {bad}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature column names: {dupes}")
        columns, problems = [], []
        for name in names:
            col = frame[name]
            kind = _kind_of(col)
            if kind is None:
                problems.append(f"{name!r} ({col.dtype})")
                continue
            cats = None
            ordered = False
            if kind == "category":
                dtype = col.dtype
                assert isinstance(dtype, pd.CategoricalDtype)
                cats = [_json_scalar(v) for v in dtype.categories]
                ordered = bool(dtype.ordered)
            text_dtype = ("object" if col.dtype == object else "str") if kind == "string" \
                else None
            columns.append(FeatureColumn(name=name, kind=kind, categories=cats, ordered=ordered,
                                         had_missing=bool(col.isna().any()),
                                         text_dtype=text_dtype))
        if problems:
            raise TypeError(f"{len(problems)} feature column(s) have a dtype a model signature "
                            f"cannot carry: {', '.join(problems)}; convert them to numbers, "
                            "strings, categories or datetimes")
        return cls(columns=columns)

    def signature(self, output_name: str) -> ModelSignature:
        """MLflow signature: one required input column per feature, one double output."""
        inputs = Schema([ColSpec(_SIGNATURE_TYPES[c.kind], c.name) for c in self.columns])
        return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", output_name)]))

    def to_request(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A feature frame as a scoring request: model columns only, categoricals as strings.

        MLflow's signature enforcement refuses a pandas ``category`` column where the signature
        says ``string``; convert a training-style frame with this before calling a loaded
        pyfunc model's ``predict``.
        """
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise ModelInputError(f"frame lacks model column(s) {missing}")
        out = frame.loc[:, self.names].copy()
        for c in self.columns:
            if c.kind == "category":
                values = out[c.name].astype(object)
                out[c.name] = values.where(values.isna(), values.map(str))
        return out

    def example(self, frame: pd.DataFrame, n_rows: int = 5) -> pd.DataFrame:
        """The first ``n_rows`` of a training frame as a request would send them."""
        return self.to_request(frame.head(n_rows))

    def prepare(self, request: Any) -> pd.DataFrame:
        """Check a request against the schema and convert it to the training dtypes.

        Extra columns are dropped; columns are put in training order; categorical columns get
        the training categories back (unknown levels become missing, with a warning).

        Raises
        ------
        ModelInputError
            Missing columns, or columns of the wrong type; one message naming every problem.
        """
        frame = request if isinstance(request, pd.DataFrame) else pd.DataFrame(request)
        if self._already_prepared(frame):
            # Fast path (a scoring service's hot loop): the frame already has the training
            # dtypes, e.g. it came from the same feature builder; nothing to convert or check.
            return frame.loc[:, self.names]
        if frame.columns.duplicated().any():
            dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise ModelInputError(f"request has duplicate column(s) {dupes}")
        missing = [n for n in self.names if n not in frame.columns]
        problems = []
        if missing:
            problems.append(f"missing column(s) {missing} (the model needs {len(self.names)} "
                            f"columns: {self.names})")
        out: dict[str, pd.Series] = {}
        for c in self.columns:
            if c.name in missing:
                continue
            converted = _convert(frame[c.name], c)
            if isinstance(converted, str):
                problems.append(converted)
            else:
                out[c.name] = converted
        if problems:
            raise ModelInputError("request refused: " + "; ".join(problems))
        return pd.DataFrame(out, index=frame.index)

    def _already_prepared(self, frame: pd.DataFrame) -> bool:
        """Whether every model column is present, unique and already in its training dtype."""
        if not frame.columns.is_unique:
            return False
        # a dict, not the dtypes Series: a label lookup per column and request adds up
        dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
        for c in self.columns:
            dtype = dtypes.get(c.name)
            if dtype is None:
                return False
            if c.kind == "category":
                if not _same_categories(dtype, c):
                    return False
            elif c.kind == "string":
                if c.text_dtype != "str" or dtype != _PREPARED_DTYPES["string"]:
                    return False
            elif c.kind == "long":
                # any width: the features use int8 flags; the estimator reads them as numbers
                if not (pd.api.types.is_integer_dtype(dtype)
                        and isinstance(dtype, np.dtype)):
                    return False
            elif dtype != _PREPARED_DTYPES[c.kind]:
                return False
        return True


_PREPARED_DTYPES: dict[str, Any] = {
    "double": np.dtype("float64"), "boolean": np.dtype("bool"),
    "datetime": np.dtype("datetime64[ns]"), "string": pd.StringDtype(na_value=np.nan),
}


def _same_categories(dtype: Any, spec: FeatureColumn) -> bool:
    return (isinstance(dtype, pd.CategoricalDtype) and bool(dtype.ordered) == spec.ordered
            and [_json_scalar(v) for v in dtype.categories] == (spec.categories or []))


def _kind_of(col: pd.Series) -> ColumnKind | None:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and \
            pd.api.types.infer_dtype(col, skipna=True) in {"string", "empty"}:
        return "string"
    return None


def _json_scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _examples(values: pd.Series, k: int = 3) -> str:
    return repr(values.dropna().unique()[:k].tolist())


def _convert(col: pd.Series, spec: FeatureColumn) -> pd.Series | str:
    """The column in training dtype, or a sentence saying why it cannot be."""
    name, kind = spec.name, spec.kind
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    wrong = f"column {name!r} must be {_SIGNATURE_TYPES[kind]}"
    if kind in ("double", "long"):
        if pd.api.types.is_bool_dtype(col.dtype) or inferred not in _NUMERIC_INFERRED:
            return f"{wrong}, got {col.dtype} ({inferred}), e.g. {_examples(col)}"
        if kind == "long" and pd.api.types.is_integer_dtype(col.dtype) and not col.isna().any():
            return col.astype("int64")  # not through float64, which rounds beyond 2**53
        numbers = pd.to_numeric(col).astype("float64")
        if kind == "double":
            return numbers
        # Integers arrive as floats from JSON; accept them only when nothing is lost.
        finite = np.isfinite(numbers.to_numpy())
        if not finite.all():
            return (f"{wrong} without missing values, got {int((~finite).sum()):,} missing or "
                    "non-finite")
        if not (numbers == np.round(numbers)).all():
            return f"{wrong}, got non-integral values, e.g. " \
                   f"{_examples(numbers[numbers != np.round(numbers)])}"
        return numbers.astype("int64")
    if kind == "boolean":
        if not pd.api.types.is_bool_dtype(col.dtype) and inferred not in {"boolean", "empty"}:
            return f"{wrong}, got {col.dtype} ({inferred}), e.g. {_examples(col)}"
        if col.isna().any():
            return f"{wrong} without missing values, got {int(col.isna().sum()):,} missing"
        return col.astype(bool)
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col.dtype) or inferred in {"datetime64",
                                                                           "datetime", "empty"}:
            stamps = pd.to_datetime(col)
            if getattr(stamps.dt, "tz", None) is not None:
                stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
            return stamps.astype("datetime64[ns]")
        return f"{wrong}, got {col.dtype} ({inferred}), e.g. {_examples(col)}"
    # string or category
    cats = spec.categories or []
    textual = inferred in {"string", "empty", "categorical"} or isinstance(
        col.dtype, pd.CategoricalDtype)
    numeric_cats = bool(cats) and not all(isinstance(c, str) for c in cats)
    if not textual and not (numeric_cats and inferred in _NUMERIC_INFERRED):
        return f"{wrong}, got {col.dtype} ({inferred}), e.g. {_examples(col)}"
    if kind == "string":
        if spec.text_dtype == "object":
            return col.astype(object).where(col.notna(), None)
        return col.astype("str")
    as_text = col.astype(object)
    as_text = as_text.where(as_text.isna(), as_text.map(str))
    codes = pd.Index([str(c) for c in cats]).get_indexer(pd.Index(as_text))
    unknown = (codes < 0) & col.notna().to_numpy()
    if unknown.any():
        levels = pd.unique(as_text[unknown])[:5].tolist()
        warnings.warn(f"column {name!r}: {int(unknown.sum()):,} value(s) not seen in training, "
                      f"e.g. {levels}; scored as missing", UserWarning, stacklevel=4)
    dtype = pd.CategoricalDtype(categories=pd.Index(cats), ordered=spec.ordered)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=col.index, name=name)


class ClvParams(BaseModel):
    """BG/NBD and Gamma-Gamma parameters fitted beside a lifetime-value model.

    The scoring API's probability alive needs the BG/NBD; registering them inside the LTV model
    (``log_and_register(..., clv_params=...)``) makes them travel with the version that is
    served instead of living in a run artifact looked up separately.

    Attributes
    ----------
    bgnbd
        ``r``, ``alpha``, ``a``, ``b`` (:class:`~barberpro_ml.models.BetaGeoParams`).
    gamma_gamma
        ``p``, ``q``, ``v`` of the Gamma-Gamma spend model (may be empty).
    time_unit_days
        Days per time unit of ``alpha`` and of the RFM inputs (7: weeks).
    fitted_at
        The cut-off the parameters were fitted at (ISO date), when known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float] = Field(default_factory=dict)
    time_unit_days: float = Field(7.0, gt=0)
    fitted_at: str | None = None


class PyfuncSpec(BaseModel):
    """What :class:`EstimatorModel` needs besides the estimator (stored as a JSON artifact).

    ``clv_params`` is set on lifetime-value models registered with their BG/NBD parameters
    (None otherwise, and on versions logged before the field existed).
    """

    model_config = ConfigDict(frozen=True)

    features: FeatureSchema
    output: OutputKind
    output_name: str
    positive_class: Any | None = None
    clv_params: ClvParams | None = None


class EstimatorModel(PythonModel):
    """Pyfunc wrapper of a fitted estimator: checked input in, one float per row out.

    Parameters
    ----------
    estimator
        A fitted estimator with ``predict_proba`` (``output="proba"``) or ``predict``. ``None``
        when MLflow builds the wrapper from the logged artifacts (``load_context`` fills it).
    spec
        The feature schema and the output settings.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = pd.DataFrame({"visits": [0.0, 1, 5, 6]}); y = [1, 1, 0, 0]
    >>> wrapper = EstimatorModel.from_estimator(LogisticRegression().fit(X, y), X)
    >>> churn = wrapper.predict(None, X)
    >>> churn.shape, bool(churn[0] > churn[3])
    ((4,), True)
    """

    def __init__(self, estimator: Any = None, spec: PyfuncSpec | None = None) -> None:
        self.estimator = estimator
        self.spec = spec

    @classmethod
    def from_estimator(cls, estimator: Any, X_train: pd.DataFrame, *,
                       output: OutputKind = "proba", output_name: str | None = None,
                       clv_params: ClvParams | dict[str, Any] | None = None
                       ) -> EstimatorModel:
        """Wrap a fitted estimator, reading the feature schema off its training frame
        (``clv_params``: see :class:`ClvParams`)."""
        _check_fitted(estimator, output)
        positive = None
        if output == "proba":
            classes = list(getattr(estimator, "classes_", [0, 1]))
            if len(classes) != 2:
                raise ValueError(f"output='proba' needs a binary classifier; the estimator has "
                                 f"{len(classes)} classes {classes[:10]}")
            positive = _json_scalar(classes[1])
        spec = PyfuncSpec(features=FeatureSchema.from_frame(X_train), output=output,
                          output_name=output_name or ("probability" if output == "proba"
                                                      else "prediction"),
                          positive_class=positive,
                          clv_params=None if clv_params is None
                          else ClvParams.model_validate(clv_params))
        return cls(estimator, spec)

    def load_context(self, context: Any) -> None:
        """Read the estimator and the spec from the model's artifacts (MLflow calls this)."""
        if self.estimator is not None:
            return
        self.estimator, self.spec = _read_logged(context, "estimator", PyfuncSpec)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> np.ndarray:
        """One float per request row (probability of the positive class, or the prediction).

        Raises
        ------
        ModelInputError
            A missing column or a column of the wrong type (names the column(s)).
        """
        if self.estimator is None or self.spec is None:
            raise RuntimeError("EstimatorModel has no estimator: build it with from_estimator "
                               "or load it with mlflow.pyfunc.load_model")
        X = self.spec.features.prepare(model_input)
        if len(X) == 0:
            return np.empty(0, dtype=float)
        if self.spec.output == "proba":
            return np.asarray(self.estimator.predict_proba(X), dtype=float)[:, 1]
        return np.asarray(self.estimator.predict(X), dtype=float).ravel()


def _check_fitted(estimator: Any, output: OutputKind) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    method = "predict_proba" if output == "proba" else "predict"
    if not callable(getattr(estimator, method, None)):
        raise TypeError(f"output={output!r} needs an estimator with {method}(); "
                        f"{type(estimator).__name__} has none")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ValueError(f"{type(estimator).__name__} is not fitted; call fit() before logging "
                         "it") from None
    except TypeError:
        pass  # not a scikit-learn estimator; predicting on the input example will tell


def _log_from_code(entry: Path, wrapper: type[PythonModel], *, name: str,
                   model: tuple[str, str, Any],
                   spec: tuple[str, str, BaseModel], signature: ModelSignature,
                   example: pd.DataFrame, ship_code: bool,
                   extra_pip_requirements: list[str] | None) -> ModelInfo:
    """Log a pyfunc model "from code": ``entry`` builds the wrapper, whose ``load_context``
    reads the cloudpickled ``model`` and the JSON ``spec`` (each ``(artifact, file, object)``).

    The requirements are derived from what loading and predicting the model imports
    (:mod:`barberpro_ml.registry._requirements`), then ``extra_pip_requirements`` added.
    """
    with tempfile.TemporaryDirectory(prefix="barberpro-model-") as tmp:
        model_key, model_file, model_object = model
        model_path = Path(tmp) / model_file
        with model_path.open("wb") as fh:
            cloudpickle.dump(model_object, fh)
        spec_key, spec_file, spec_object = spec
        spec_path = Path(tmp) / spec_file
        spec_path.write_text(spec_object.model_dump_json(indent=2), encoding="utf-8")
        artifacts = {model_key: str(model_path), spec_key: str(spec_path)}
        requirements = derive_requirements(entry, wrapper, artifacts, example,
                                           ship_code=ship_code)
        info: ModelInfo = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(entry),
            artifacts=artifacts,
            code_paths=[str(PACKAGE_DIR)] if ship_code else None,
            signature=signature,
            input_example=example,
            pip_requirements=requirements + list(extra_pip_requirements or []),
        )
    return info


SpecT = TypeVar("SpecT", bound=BaseModel)


def _read_logged(context: Any, model_key: str, spec_type: type[SpecT]) -> tuple[Any, SpecT]:
    """What :func:`_log_from_code` stored, read back in a wrapper's ``load_context``: the
    cloudpickled object of artifact ``model_key`` and the JSON spec (artifact ``spec``)."""
    with Path(context.artifacts[model_key]).open("rb") as fh:
        obj = cloudpickle.load(fh)
    spec = spec_type.model_validate_json(
        Path(context.artifacts["spec"]).read_text(encoding="utf-8"))
    return obj, spec


def log_model(
    estimator: Any,
    X_train: pd.DataFrame,
    *,
    name: str = "model",
    output: OutputKind = "proba",
    output_name: str | None = None,
    input_example_rows: int = 5,
    ship_code: bool = True,
    extra_pip_requirements: list[str] | None = None,
    clv_params: ClvParams | dict[str, Any] | None = None,
) -> ModelInfo:
    """Log a fitted estimator as an MLflow pyfunc model (in the active run, if any).

    Parameters
    ----------
    estimator
        The fitted estimator (``predict_proba`` for ``output="proba"``).
    X_train
        The training feature frame (or any frame with the same columns and dtypes): gives the
        signature, the feature schema and the input example.
    name
        Name of the logged model within the run.
    output, output_name
        ``proba`` (positive-class probability, for classifiers) or ``predict`` (regressors);
        the name of the output column in the signature.
    input_example_rows
        Rows of ``X_train`` stored as the input example.
    ship_code
        Ship the ``barberpro_ml`` source with the model so that it loads where the package is
        not installed (without it, the package must be importable wherever the model loads).
    extra_pip_requirements
        Added to the derived requirements (what loading and predicting the model imports).
    clv_params
        BG/NBD (and Gamma-Gamma) parameters to store inside the model (:class:`ClvParams`, or
        its dict form ``{"bgnbd": {...}, "gamma_gamma": {...}, "time_unit_days": 7, ...}``);
        lifetime-value models pass them so the scorer's probability alive comes from the
        version it serves.

    Returns
    -------
    mlflow.models.model.ModelInfo
        ``model_uri`` (``models:/m-...``), ``model_id``, ``run_id``, ``signature``.

    Examples
    --------
    >>> with mlflow.start_run():                                       # doctest: +SKIP
    ...     info = log_model(model, X_train)
    ...     version = register(info.model_uri, "barberpro-churn")
    """
    wrapper = EstimatorModel.from_estimator(estimator, X_train, output=output,
                                            output_name=output_name, clv_params=clv_params)
    assert wrapper.spec is not None
    example = wrapper.spec.features.example(X_train, input_example_rows)
    # Fail here, with our message, rather than inside MLflow's input-example validation.
    wrapper.predict(None, example)
    return _log_from_code(
        _ENTRY, EstimatorModel, name=name, model=("estimator", "estimator.pkl", estimator),
        spec=("spec", "pyfunc_spec.json", wrapper.spec),
        signature=wrapper.spec.features.signature(wrapper.spec.output_name), example=example,
        ship_code=ship_code, extra_pip_requirements=extra_pip_requirements)


def register(model_uri: str, name: str, *, alias: str | None = CHALLENGER,
             tags: dict[str, str] | None = None, client: MlflowClient | None = None
             ) -> ModelVersion:
    """Register a logged model as a new version of ``name`` and point ``alias`` at it.

    If setting the alias fails, the new version is deleted again (no half-registered model).

    Parameters
    ----------
    model_uri
        ``ModelInfo.model_uri`` from :func:`log_model`.
    name
        Registered model name (``barberpro-churn``).
    alias
        ``challenger`` (default) or ``None``. Any other alias is refused: ``champion`` has one
        door, :func:`~barberpro_ml.registry.promote`.
    tags
        Version tags.

    Returns
    -------
    mlflow.entities.model_registry.ModelVersion
    """
    if alias is not None and alias != CHALLENGER:
        raise ValueError(f"register() sets only the {CHALLENGER!r} alias (asked for {alias!r}); "
                         "@champion is set by barberpro_ml.registry.promote, after the gate")
    client = client or MlflowClient()
    version = mlflow.register_model(model_uri, name, tags=tags)
    if alias is not None:
        try:
            client.set_registered_model_alias(name, alias, version.version)
        except BaseException:
            client.delete_model_version(name, version.version)
            raise
    return client.get_model_version(name, version.version)


def log_and_register(
    estimator: Any, X_train: pd.DataFrame, name: str, *, output: OutputKind = "proba",
    alias: str | None = CHALLENGER, tags: dict[str, str] | None = None, **log_kwargs: Any,
) -> tuple[ModelInfo, ModelVersion]:
    """:func:`log_model` then :func:`register` (the usual last step of a training run).

    ``log_kwargs`` go to :func:`log_model` (e.g. ``clv_params`` for a lifetime-value model).
    """
    info = log_model(estimator, X_train, output=output, **log_kwargs)
    return info, register(info.model_uri, name, alias=alias, tags=tags)

