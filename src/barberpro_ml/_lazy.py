"""Package exports imported on first use (PEP 562).

A registered model ships this package's source and, when it loads, imports
``barberpro_ml.registry.models`` (or ``registry.recs_model``) and the modules of its pickled
estimator. Eager ``__init__`` imports would pull the whole library in with them: the data
contract (pandera, pyarrow), the evaluation plots (matplotlib), the tuning (optuna), so every
model's environment would need them. The packages on that path (``barberpro_ml``,
``barberpro_ml.models``, ``barberpro_ml.models.recs``, ``barberpro_ml.registry``) therefore
import their exports on first use.

Each of them lists its exports once, as imports inside ``if TYPE_CHECKING:`` (what type
checkers and readers see); at run time :func:`attach` reads that block from the package's own
source and returns the module ``__getattr__`` and ``__dir__`` that import a name from its module
the first time it is asked for. ``from barberpro_ml.registry import promote`` and
``bml.models.ChurnClassifier`` work as before.

An export named like a submodule of its package (``registry.regate``, the function in
``registry/regate.py``; ``registry.model_card``) stays the export, as it was with eager
imports: the package's module becomes a :class:`_Package`, which ignores the import system
binding the submodule to that name on the package.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["attach"]


class _Package(types.ModuleType):
    """A package whose exports named like its submodules keep those names."""

    _shadowing: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        # Loading ``<package>.<name>`` binds the submodule to ``name`` on the package; the
        # export of that name (set by the lazy ``__getattr__``, or still to be) wins.
        if (name in self._shadowing and isinstance(value, types.ModuleType)
                and value.__name__ == f"{self.__name__}.{name}"):
            return
        super().__setattr__(name, value)


def attach(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` of ``package`` for the exports of its TYPE_CHECKING block.

    Parameters
    ----------
    package
        The package's ``__name__``.
    init_file
        Its ``__file__`` (the ``__init__.py`` whose ``if TYPE_CHECKING:`` block lists the
        exports as ``from <module> import <name>``).

    Raises
    ------
    ImportError
        When the file has no such block.
    """
    where = _exports(Path(init_file), package)
    folder = Path(init_file).parent
    shadowing = frozenset(name for name, (_, attribute) in where.items() if attribute is not None
                          and ((folder / f"{name}.py").is_file()
                               or (folder / name / "__init__.py").is_file()))
    if shadowing:
        module = sys.modules[package]
        module.__class__ = _Package
        module._shadowing = shadowing  # type: ignore[attr-defined]

    def get(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, attribute = target
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    def names() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return get, names


def _exports(init_file: Path, package: str) -> dict[str, tuple[str, str | None]]:
    """``name -> (module, attribute)`` (attribute None: the name is a submodule)."""
    tree = ast.parse(init_file.read_text(encoding="utf-8"), filename=str(init_file))
    blocks = [node.body for node in tree.body if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    if not blocks:
        raise ImportError(f"{init_file} has no `if TYPE_CHECKING:` block listing its exports")
    where: dict[str, tuple[str, str | None]] = {}
    for statement in blocks[0]:
        if not (isinstance(statement, ast.ImportFrom) and statement.module
                and statement.level == 0):
            raise ImportError(f"{init_file}:{statement.lineno}: the TYPE_CHECKING block may hold "
                              "only absolute `from <module> import <name>` statements")
        for alias in statement.names:
            if statement.module == package:  # `from barberpro_ml import data`: a submodule
                where[alias.asname or alias.name] = (f"{package}.{alias.name}", None)
            else:
                where[alias.asname or alias.name] = (statement.module, alias.name)
    return where
