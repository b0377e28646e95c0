"""The pip requirements of a model logged from code: what loading and predicting it imports.

A model's ``requirements.txt`` is what a consumer installs (beside ``mlflow``) to load it without
this package. It is derived, not kept by hand, from the two kinds of import that loading the
model in a fresh interpreter performs:

* what runs: the wrapper's ``load_context`` (unpickling the estimator imports the module of every
  class it references) and ``predict`` on the input example (imports inside functions). Both
  are run here, on a fresh wrapper, with every absolute import made by the package's code (or by
  cloudpickle on its behalf) recorded;
* what is imported once, when a module loads: the module-level imports of the entry script and
  of every package module reached from it or from the recorded imports, read from their source
  (``if TYPE_CHECKING:`` blocks left out; a lazy package's ``from <package> import <name>``
  followed to the module of the export, :mod:`barberpro_ml._lazy`). Module-level code of the
  package imports nothing else (no import through a function called at import time).

Every top-level module found is mapped to the installed distribution that provides it and pinned
to the installed version. Left out: the standard library, the package itself when its source
ships with the model, and MLflow (MLflow pins its own version in every model's requirements).
``tests/test_standalone_models.py`` checks the result where it matters: each family's
``@champion`` loads and predicts in a new virtual environment holding only those requirements.
"""

from __future__ import annotations

import ast
import builtins
import functools
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from barberpro_ml._lazy import _exports

PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""The ``barberpro_ml`` source directory: what ``code_paths`` ships with a model."""
PACKAGE = PACKAGE_DIR.name
# MLflow adds ``mlflow==<version>`` to every model's requirements itself.
_MLFLOW_DISTRIBUTIONS = {"mlflow", "mlflow-skinny", "mlflow-tracing"}
# Importers whose imports the model needs: the package, and cloudpickle re-importing the
# modules that functions pickled by value refer to.
_IMPORTERS = (PACKAGE, "cloudpickle")


class UnloadableModelError(RuntimeError):
    """A model whose estimator refers to a module that exists only in this process."""


def derive_requirements(entry: Path, wrapper: Callable[[], Any], artifacts: Mapping[str, str],
                        example: pd.DataFrame, *, ship_code: bool) -> list[str]:
    """Pinned requirements (``name==version``) of a model logged from code.

    Parameters
    ----------
    entry
        The "models from code" entry script.
    wrapper
        Builds the empty wrapper the entry script builds (``EstimatorModel``, say).
    artifacts
        The model's artifacts (name -> local path), as ``load_context`` receives them.
    example
        The input example; the fresh wrapper predicts it.
    ship_code
        Whether :data:`PACKAGE_DIR` ships with the model (then it is not a requirement).

    Raises
    ------
    UnloadableModelError
        When the estimator refers to a module defined only in this process.
    """
    observed = _observed_imports(wrapper, artifacts, example)
    modules = _top_levels(_imported_at_load(entry, observed) | observed)
    _refuse_in_memory_modules(modules)
    return pins(modules, skip={PACKAGE} if ship_code else set())


def _observed_imports(wrapper: Callable[[], Any], artifacts: Mapping[str, str],
                      example: pd.DataFrame) -> set[str]:
    """Modules the package's code imports while a fresh wrapper loads its artifacts and predicts
    (with the submodules and lazy exports named by ``from <module> import <name>``)."""
    seen: set[str] = set()
    original = builtins.__import__

    def recording(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                  level: int = 0) -> Any:
        importer = str((globals or {}).get("__name__", ""))
        if level == 0 and importer.partition(".")[0] in _IMPORTERS:
            seen.update(_named_modules(name, fromlist or ()))
        return original(name, globals, locals, fromlist, level)

    model = wrapper()
    builtins.__import__ = recording
    try:
        model.load_context(SimpleNamespace(artifacts=dict(artifacts), model_config={}))
        model.predict(None, example)
    finally:
        builtins.__import__ = original
    return seen


def _imported_at_load(entry: Path, seeds: Iterable[str]) -> set[str]:
    """Every module imported when the entry script runs and the package modules in ``seeds``
    load: the closure of module-level imports through the package's modules and their parent
    packages."""
    found = set(_module_level_imports(entry.resolve(), package=None))
    pending = [m for m in {*found, *seeds} if _is_ours(m)]
    done: set[str] = set()
    while pending:
        module = pending.pop()
        if module in done:
            continue
        done.add(module)
        parts = module.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        source = _source(module)
        imports = set(parents)
        if source is not None:
            package = module if source.name == "__init__.py" else module.rpartition(".")[0]
            imports |= _module_level_imports(source, package=package)
        found |= imports
        pending.extend(m for m in imports if _is_ours(m) and m not in done)
    return found


@functools.cache
def _module_level_imports(source: Path, package: str | None) -> frozenset[str]:
    """Absolute names of the modules a source file imports when it runs (function bodies and
    ``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = (package or "").split(".")
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                found.update(_named_modules(base, [alias.name for alias in node.names]))
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.With, ast.ClassDef)):
                visit(node.body)

    visit(tree.body)
    return frozenset(found)


def _named_modules(module: str, names: Iterable[str]) -> set[str]:
    """``module``, and for the package's own modules the submodules and lazy exports among
    ``names`` (``from barberpro_ml.registry import promote`` loads ``registry.promotion``)."""
    out = {module}
    if not _is_ours(module):
        return out
    source = _source(module)
    exports = _lazy_exports(source) if source is not None and source.name == "__init__.py" \
        else {}
    for name in names:
        if _source(f"{module}.{name}") is not None:
            out.add(f"{module}.{name}")
        elif name in exports:
            out.add(exports[name])
    return out


@functools.cache
def _lazy_exports(init_file: Path) -> dict[str, str]:
    package = ".".join(init_file.parent.relative_to(PACKAGE_DIR.parent).parts)
    try:
        return {name: module for name, (module, _) in _exports(init_file, package).items()}
    except ImportError:  # an eager package: its imports are module-level ones
        return {}


def _source(module: str) -> Path | None:
    if not _is_ours(module):
        return None
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _top_levels(modules: Iterable[str]) -> list[str]:
    return sorted({m.partition(".")[0] for m in modules if m})


def _refuse_in_memory_modules(modules: list[str]) -> None:
    in_memory = [m for m in modules if m in sys.modules
                 and getattr(sys.modules[m], "__file__", None) is None
                 and getattr(sys.modules[m], "__path__", None) is None
                 and m not in sys.builtin_module_names and m not in sys.stdlib_module_names]
    if in_memory:
        raise UnloadableModelError(
            f"the model refers to module(s) {in_memory}, which exist only in this process "
            "(no file): it would not load anywhere else; define the estimator's classes in an "
            "importable module")


@functools.cache
def _providers() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def pins(modules: Iterable[str], *, skip: set[str]) -> list[str]:
    """``name==version`` of the installed distributions providing the top-level ``modules``.

    The standard library, ``skip`` and MLflow's distributions are left out; a module no
    installed distribution provides is named in a warning (it must be importable wherever the
    model is loaded).
    """
    out: set[str] = set()
    unknown = []
    for module in modules:
        if module in sys.stdlib_module_names or module in skip:
            continue
        distributions = _providers().get(module)
        if not distributions:
            unknown.append(module)
            continue
        for distribution in distributions:
            if distribution.lower().replace("_", "-") in _MLFLOW_DISTRIBUTIONS:
                continue
            out.add(f"{distribution}=={metadata.version(distribution)}")
    if unknown:
        warnings.warn(f"the model imports {unknown} when it loads and predicts, and no installed "
                      "distribution provides them: they are not in its requirements and must "
                      "be importable wherever the model is loaded", UserWarning, stacklevel=3)
    return sorted(out, key=str.lower)
