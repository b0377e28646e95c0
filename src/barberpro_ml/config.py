"""Reading YAML configs into typed models, and the configs shipped inside the package.

The shipped configs live in ``barberpro_ml/configs/`` (package data, so an installed wheel
can train; the checkout's top-level ``configs/`` is the same folder). A path given by the user
wins; a bare file name such as ``"churn.yaml"`` that does not exist where the user runs falls
back to the shipped copy, so ``barberpro-ml train churn`` works in an empty folder.

A config that does not validate raises one :class:`~barberpro_ml.errors.ConfigError` listing
every problem on its own line: the file, the line, the key path, what was expected and what
was found.

Examples
--------
>>> from barberpro_ml.definitions import Definitions
>>> load_yaml_model(Definitions, shipped_config("definitions.yaml")).churn_horizon_days
90
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from barberpro_ml.errors import ConfigError

__all__ = [
    "SHIPPED_CONFIGS",
    "describe_validation_error",
    "load_yaml_model",
    "resolve_config_path",
    "shipped_config",
]

M = TypeVar("M", bound=BaseModel)


def _shipped_dir() -> Path:
    return Path(str(resources.files("barberpro_ml") / "configs"))


SHIPPED_CONFIGS: tuple[str, ...] = (
    "churn.yaml", "ltv.yaml", "recs.yaml", "segments.yaml", "pipeline.yaml", "score.yaml",
    "simulation.yaml", "claims.yaml", "definitions.yaml", "forecast.yaml", "providers.yaml",
    "provider_departure.yaml", "pricing.yaml",
)
"""The config files the package ships."""


def shipped_config(name: str) -> Path:
    """Path of a config shipped with the package, e.g. ``shipped_config("claims.yaml")``."""
    path = _shipped_dir() / Path(name).name
    if not path.is_file():
        raise ConfigError(f"no shipped config {name!r}; shipped: {list(SHIPPED_CONFIGS)}")
    return path


def resolve_config_path(path: str | Path, *, relative_to: Path | None = None) -> Path:
    """Where a config path points.

    In order: the path itself when absolute or existing from the working directory; the path
    under ``relative_to`` (the folder of the config that named it); the shipped config of the
    same file name when the path is ``name.yaml`` or ``configs/name.yaml``. Otherwise the
    path as given (reading it then fails naming it).
    """
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    if relative_to is not None and (relative_to / p).exists():
        return relative_to / p
    if len(p.parts) == 1 or (len(p.parts) == 2 and p.parts[0] == "configs"):
        candidate = _shipped_dir() / p.name
        if candidate.is_file():
            return candidate
    return p


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or its deepest existing parent)."""
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key),
                         None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) \
                and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "date_parsing": "a date (YYYY-MM-DD)",
    "datetime_parsing": "a date-time (ISO 8601)", "date_from_datetime_parsing": "a date",
}


def describe_validation_error(exc: ValidationError, *, source: str,
                              node: yaml.Node | None = None,
                              known_keys: Mapping[tuple[str | int, ...], list[str]] | None = None
                              ) -> list[str]:
    """One line per problem of a pydantic validation error: file, line, key, expectation."""
    lines: list[tuple[int, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        line = _line_of(node, loc) if node is not None else None
        where = f"{source}:{line}" if line else source
        kind = err["type"]
        got = err.get("input")
        if kind == "extra_forbidden":
            parent = loc[:-1]
            allowed = (known_keys or {}).get(parent)
            close = difflib.get_close_matches(str(loc[-1]), allowed or [], n=1)
            hint = (f"; did you mean {close[0]!r}?" if close else
                    f"; allowed keys here: {', '.join(allowed)}" if allowed else "")
            text = f"{where}: unknown key {key!r}{hint}"
        elif kind in _EXPECTED:
            text = f"{where}: {key}: expected {_EXPECTED[kind]}, got {got!r}"
        elif kind == "missing":
            text = f"{where}: {key}: required key is missing"
        else:
            shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
            message = str(err["msg"]).removeprefix("Value error, ")
            text = f"{where}: {key}: {message}{shown}"
        lines.append((line or 0, text))
    return [text for _, text in sorted(lines, key=lambda item: item[0])]


def _known_keys(model: type[BaseModel], prefix: tuple[str | int, ...] = ()
                ) -> dict[tuple[str | int, ...], list[str]]:
    """The field names of ``model`` and its nested models, by key path."""
    known: dict[tuple[str | int, ...], list[str]] = {prefix: sorted(model.model_fields)}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            known |= _known_keys(annotation, (*prefix, name))
    return known


def load_yaml_model(model: type[M], path: str | Path, *,
                    overrides: Mapping[str, Any] | None = None) -> M:
    """Read ``path`` (YAML) into ``model``; every problem in one :class:`ConfigError`.

    Parameters
    ----------
    model
        A pydantic model (``extra="forbid"``: unknown keys are problems).
    path
        The YAML file; an empty file is an empty mapping (every default).
    overrides
        Top-level values that replace the file's (the command line's options).

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, is not a mapping, or does not validate; one line per
        problem naming file, line, key and expected type.
    """
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {source}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {source}: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values at the top level, "
                          f"got {type(raw).__name__}")
    if overrides:
        raw = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = describe_validation_error(exc, source=source, node=node,
                                             known_keys=_known_keys(model))
        raise ConfigError(problems, source=None) from None
