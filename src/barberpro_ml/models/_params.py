"""Parameter validation in scikit-learn's ``_parameter_constraints`` style, for every model here.

Each estimator declares ``_parameter_constraints`` (``Interval``, ``StrOptions``, ``None``,
types, ``"random_state"`` ...) and decorates ``fit`` with
``sklearn.base._fit_context``, which calls ``_validate_params``. scikit-learn's own
``_validate_params`` stops at the first bad parameter; :class:`ValidatedEstimator` reports every
bad parameter at once, in a short ``name must be ...`` form, followed by scikit-learn's
canonical sentence for the first one (``The 'x' parameter of Model must be ... Got ...
instead.``). The error, :class:`InvalidParametersError`, is both scikit-learn's
``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``) and this package's
:class:`~barberpro_ml.errors.InputError` (the command line exits 2, the service answers 422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import (
    InvalidParameterError,
    StrOptions,
    make_constraint,
    validate_parameter_constraints,
)

from barberpro_ml.errors import InputError

__all__ = ["InvalidParametersError", "ValidatedEstimator", "fit_context", "parameter_problems"]

_Method = TypeVar("_Method", bound=Callable[..., Any])


class InvalidParametersError(InputError, InvalidParameterError):  # type: ignore[misc]
    """Estimator parameters that violate their ``_parameter_constraints``."""


def _describe(constraints: list[Any]) -> str:
    shown = [c for c in (make_constraint(c) for c in constraints) if not c.hidden]
    words = [
        "one of {" + ", ".join(repr(o) for o in sorted(c.options, key=str)) + "}"
        if isinstance(c, StrOptions) else str(c)
        for c in shown
    ]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def parameter_problems(
    estimator: Any,
) -> tuple[list[str], InvalidParameterError | None, set[str]]:
    """Every parameter of ``estimator`` violating its ``_parameter_constraints``.

    Returns
    -------
    problems : list of str
        ``"name must be <constraints>, got <value>"`` per bad parameter, in ``get_params``
        order (alphabetical, as scikit-learn checks them).
    first : InvalidParameterError or None
        scikit-learn's own error for the first bad parameter.
    invalid : set of str
        The names of the bad parameters.
    """
    constraints: dict[str, Any] = estimator._parameter_constraints
    name = type(estimator).__name__
    problems: list[str] = []
    first: InvalidParameterError | None = None
    invalid: set[str] = set()
    for param, value in estimator.get_params(deep=False).items():
        allowed = constraints.get(param)
        if allowed is None or allowed == "no_validation":
            continue
        try:
            validate_parameter_constraints({param: allowed}, {param: value}, caller_name=name)
        except InvalidParameterError as error:
            problems.append(f"{param} must be {_describe(allowed)}, got {value!r}")
            first = first or error
            invalid.add(param)
    return problems, first, invalid


class ValidatedEstimator(BaseEstimator):  # type: ignore[misc]
    """``BaseEstimator`` whose ``_validate_params`` names every bad parameter at once."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    def _validate_params(self) -> None:
        problems, first, invalid = parameter_problems(self)
        problems += self._more_param_problems(invalid)
        if problems:
            canonical = "" if first is None else f" {first}"
            raise InvalidParametersError(
                f"invalid {type(self).__name__} parameters: {'; '.join(problems)}.{canonical}")

    def _more_param_problems(self, invalid: set[str]) -> list[str]:
        """Problems the constraints cannot express (e.g. duplicates in a sequence), for the
        parameters not in ``invalid`` (those already violating their constraints)."""
        return []


def fit_context(method: _Method) -> _Method:
    """scikit-learn's ``_fit_context(prefer_skip_nested_validation=True)``, keeping the
    decorated method's type: validates the parameters before every ``fit``."""
    return cast(_Method, _fit_context(prefer_skip_nested_validation=True)(method))
