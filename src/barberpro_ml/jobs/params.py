"""Checking an estimator's parameters where a config names them, before any work starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def estimator_params(estimator: type[Any]) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    """A pydantic field validator: the mapping's keys must be ``estimator``'s parameters, and
    the values must pass its own parameter validation (scikit-learn's ``_validate_params``
    where the estimator has it, else its ``_check_params``), so a bad value stops the job when
    its config is read, before any data is loaded or any run started.

    Examples
    --------
    >>> from barberpro_ml.models import ChurnClassifier
    >>> check = estimator_params(ChurnClassifier)
    >>> check(None, {"max_depth": 3})
    {'max_depth': 3}
    >>> check(None, {"max_dept": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown ChurnClassifier parameter 'max_dept' (did you mean 'max_depth'?)
    """
    import difflib

    known = sorted(estimator().get_params(deep=False))

    def validate(cls: Any, params: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in params if k not in known]
        if unknown:
            parts = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown {estimator.__name__} parameter"
                             f"{'s' if len(unknown) > 1 else ''} {', '.join(parts)}"
                             + ("" if any("did you mean" in p for p in parts)
                                else f"; known: {', '.join(known)}"))
        instance = estimator(**params)
        validate_params = getattr(instance, "_validate_params", None)
        if callable(validate_params) and getattr(instance, "_parameter_constraints", None):
            try:
                validate_params()
            except (ValueError, TypeError) as exc:  # sklearn's InvalidParameterError
                raise ValueError(str(exc)) from None
        # estimators that check their parameters themselves (WeeklyForecaster._check_params)
        check_params = getattr(instance, "_check_params", None)
        if callable(check_params):
            try:
                check_params()
            except (ValueError, TypeError) as exc:
                raise ValueError(str(exc)) from None
        return params

    return validate
