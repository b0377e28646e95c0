"""The Examples sections of the package's docstrings run as tests.

They are collected here, under ``testpaths = ["tests"]``, rather than with
``--doctest-modules`` over ``src``: that would import every module, including
``barberpro_ml/cli/__main__.py``, which runs the command line when imported (pytest leaves
``__main__.py`` out of ``--doctest-modules`` too), and it would turn on doctest collection for
every test file. One test per module with examples, under the same option as pytest's
``--doctest-modules`` (``ELLIPSIS``), so ``python -m pytest --doctest-modules src/barberpro_ml``
and this file run the same examples.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest
from sklearn.base import BaseEstimator

import barberpro_ml
import barberpro_ml.models
import barberpro_ml.models.recs

# Importing these runs something (python -m barberpro_ml.cli runs the command line).
_NOT_IMPORTED = {"barberpro_ml.cli.__main__"}
# Abstract bases: their subclasses, each with its own examples, are the usable estimators.
_ABSTRACT = {barberpro_ml.models.recs.BaseRecommender}


def _module_names() -> list[str]:
    names = [barberpro_ml.__name__]
    names += [info.name for info in pkgutil.walk_packages(barberpro_ml.__path__,
                                                          prefix="barberpro_ml.")]
    return sorted(set(names) - _NOT_IMPORTED)


def _doctests(module: ModuleType) -> list[doctest.DocTest]:
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
            if t.examples]


MODULES_WITH_EXAMPLES = [name for name in _module_names()
                         if _doctests(importlib.import_module(name))]


def test_modules_with_examples_are_found() -> None:
    # the walk reaches the subpackages (a broken walk would pass vacuously)
    for name in ("barberpro_ml.definitions", "barberpro_ml.config",
                 "barberpro_ml.models.churn", "barberpro_ml.models.recs.ease"):
        assert name in MODULES_WITH_EXAMPLES


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    report: list[str] = []
    for test in _doctests(module):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "\n".join(report)


def _estimators() -> list[type]:
    found = []
    for package in (barberpro_ml.models, barberpro_ml.models.recs):
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) and issubclass(obj, BaseEstimator) and obj not in _ABSTRACT:
                found.append(obj)
    return found


@pytest.mark.parametrize("cls", _estimators(), ids=lambda cls: cls.__name__)
def test_every_public_estimator_has_a_runnable_example(cls: type) -> None:
    tests = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__)
    runnable = [example for test in tests for example in test.examples
                if not example.options.get(doctest.SKIP)]
    assert "Examples\n    --------" in (cls.__doc__ or "")
    assert any(example.want for example in runnable), (
        f"{cls.__name__}'s Examples section has no example that runs and checks an output")
