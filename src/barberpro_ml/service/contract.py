"""Whether one OpenAPI document breaks clients of another: the ``/v1`` contract check.

:func:`breaking_changes` compares the operations under a prefix (``/v1``) of an old and a new
OpenAPI 3 document and lists what would break a client written against the old one:

- an operation (path and method) removed;
- a field of a documented response removed, made optional, or given a type the old schema did
  not allow (a client reading it would fail);
- a request parameter or body field made required that was not, or a new required one, or a
  parameter removed or no longer accepting a type it accepted.

Additions (new operations, new optional parameters, new response fields, new statuses) are
compatible and not listed. ``$ref`` schemas are resolved in each document's own components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["breaking_changes", "v1_document"]

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
Spec = Mapping[str, Any]


def v1_document(spec: Spec, prefix: str = "/v1") -> dict[str, Any]:
    """The part of ``spec`` a ``prefix`` client depends on: its paths and the components."""
    return {"openapi": spec.get("openapi"),
            "paths": {p: ops for p, ops in sorted(spec.get("paths", {}).items())
                      if p == prefix or p.startswith(prefix + "/")},
            "components": spec.get("components", {})}


def breaking_changes(old: Spec, new: Spec, prefix: str = "/v1") -> list[str]:
    """What in ``new`` breaks a client of ``old``'s operations under ``prefix``.

    Parameters
    ----------
    old, new
        OpenAPI 3 documents (as parsed JSON).
    prefix
        Only paths equal to it or under it are compared.

    Returns
    -------
    list of str
        One line per incompatibility (empty: ``new`` is compatible).

    Examples
    --------
    >>> old = {"paths": {"/v1/a": {"get": {"responses": {"200": {"content": {
    ...     "application/json": {"schema": {"type": "object", "required": ["x"],
    ...         "properties": {"x": {"type": "integer"}}}}}}}}}}}
    >>> breaking_changes(old, old)
    []
    >>> breaking_changes(old, {"paths": {}})
    ['GET /v1/a: operation removed']
    """
    problems: list[str] = []
    new_paths = new.get("paths", {})
    for path, operations in sorted(old.get("paths", {}).items()):
        if not (path == prefix or path.startswith(prefix + "/")):
            continue
        for method in _METHODS:
            if method not in operations:
                continue
            where = f"{method.upper()} {path}"
            after = new_paths.get(path, {}).get(method)
            if after is None:
                problems.append(f"{where}: operation removed")
                continue
            _compare_parameters(operations[method], after, old, new, where, problems)
            _compare_request_body(operations[method], after, old, new, where, problems)
            for status, response in operations[method].get("responses", {}).items():
                if status not in after.get("responses", {}):
                    problems.append(f"{where}: response {status} removed")
                    continue
                before_schema = _json_schema(response)
                after_schema = _json_schema(after["responses"][status])
                if before_schema is not None and after_schema is not None:
                    _compare_output(before_schema, after_schema, old, new,
                                    f"{where} {status}", problems, set())
    return problems


def _resolve(schema: Mapping[str, Any], spec: Spec) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 50:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        node: Any = spec
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        schema, seen = node, seen + 1
    return schema


def _variants(schema: Mapping[str, Any], spec: Spec) -> list[Mapping[str, Any]]:
    schema = _resolve(schema, spec)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [v for s in schema[key] for v in _variants(s, spec)]
    return [schema]


def _types(schema: Mapping[str, Any], spec: Spec) -> frozenset[str]:
    found: set[str] = set()
    for variant in _variants(schema, spec):
        kind = variant.get("type")
        if kind is None:
            if "properties" in variant:
                kind = "object"
            elif "items" in variant:
                kind = "array"
            else:
                return frozenset({"any"})
        if isinstance(kind, list):
            found.update(kind)
        else:
            found.add(kind)
    return frozenset(found)


def _one(schema: Mapping[str, Any], spec: Spec, kind: str) -> Mapping[str, Any] | None:
    matches = [v for v in _variants(schema, spec) if v.get("type", kind) == kind
               and (kind != "object" or "properties" in v or v.get("type") == "object")]
    return matches[0] if len(matches) == 1 else None


def _compare_output(old: Mapping[str, Any], new: Mapping[str, Any], old_spec: Spec,
                    new_spec: Spec, where: str, problems: list[str],
                    seen: set[tuple[str, str]]) -> None:
    """A response: every value the new schema allows must be one the old allowed."""
    key = (str(old.get("$ref", id(old))), str(new.get("$ref", id(new))))
    if key in seen:
        return
    seen.add(key)
    before, after = _types(old, old_spec), _types(new, new_spec)
    added = after - before - ({"integer"} if "number" in before else set())
    if "any" not in before and added:
        problems.append(f"{where}: type changed from {'|'.join(sorted(before))} to "
                        f"{'|'.join(sorted(after))} (now also {', '.join(sorted(added))})")
        return
    old_obj, new_obj = _one(old, old_spec, "object"), _one(new, new_spec, "object")
    if old_obj is not None and new_obj is not None:
        old_props, new_props = old_obj.get("properties", {}), new_obj.get("properties", {})
        old_req, new_req = set(old_obj.get("required", ())), set(new_obj.get("required", ()))
        for name, schema in old_props.items():
            if name not in new_props:
                problems.append(f"{where}: response field {name!r} removed")
                continue
            if name in old_req and name not in new_req:
                problems.append(f"{where}: response field {name!r} no longer required")
            _compare_output(schema, new_props[name], old_spec, new_spec, f"{where}.{name}",
                            problems, seen)
    old_arr, new_arr = _one(old, old_spec, "array"), _one(new, new_spec, "array")
    if old_arr is not None and new_arr is not None and "items" in old_arr \
            and "items" in new_arr:
        _compare_output(old_arr["items"], new_arr["items"], old_spec, new_spec,
                        f"{where}[]", problems, seen)


def _compare_input(old: Mapping[str, Any], new: Mapping[str, Any], old_spec: Spec,
                   new_spec: Spec, where: str, problems: list[str]) -> None:
    """A request value: every value the old schema accepted must still be accepted."""
    before, after = _types(old, old_spec), _types(new, new_spec)
    if "any" not in after and (lost := before - after - ({"integer"} if "number" in after
                                                           else set())):
        problems.append(f"{where}: no longer accepts {', '.join(sorted(lost))}")
        return
    old_obj, new_obj = _one(old, old_spec, "object"), _one(new, new_spec, "object")
    if old_obj is None or new_obj is None:
        return
    old_props, new_props = old_obj.get("properties", {}), new_obj.get("properties", {})
    old_req = set(old_obj.get("required", ()))
    for name in sorted(set(new_obj.get("required", ())) - old_req):
        problems.append(f"{where}: field {name!r} is now required")
    for name, schema in old_props.items():
        if name not in new_props:
            if new_obj.get("additionalProperties", True) is False:
                problems.append(f"{where}: field {name!r} removed (now refused)")
            continue
        _compare_input(schema, new_props[name], old_spec, new_spec, f"{where}.{name}",
                       problems)


def _compare_parameters(old: Mapping[str, Any], new: Mapping[str, Any], old_spec: Spec,
                        new_spec: Spec, where: str, problems: list[str]) -> None:
    def by_key(op: Mapping[str, Any], spec: Spec) -> dict[tuple[str, str], Mapping[str, Any]]:
        params = (_resolve(p, spec) for p in op.get("parameters", ()))
        return {(p.get("in", ""), p.get("name", "")): p for p in params}

    before, after = by_key(old, old_spec), by_key(new, new_spec)
    for (place, name), param in after.items():
        if param.get("required") and not before.get((place, name), {}).get("required"):
            problems.append(f"{where}: {place} parameter {name!r} is now required")
    for (place, name), param in before.items():
        if (place, name) not in after:
            problems.append(f"{where}: {place} parameter {name!r} removed")
        elif "schema" in param and "schema" in after[(place, name)]:
            _compare_input(param["schema"], after[(place, name)]["schema"], old_spec,
                           new_spec, f"{where} {place} parameter {name!r}", problems)


def _compare_request_body(old: Mapping[str, Any], new: Mapping[str, Any], old_spec: Spec,
                          new_spec: Spec, where: str, problems: list[str]) -> None:
    before, after = old.get("requestBody"), new.get("requestBody")
    if after is None:
        if before is not None:
            problems.append(f"{where}: request body removed")
        return
    if before is None:
        if after.get("required"):
            problems.append(f"{where}: a request body is now required")
        return
    old_schema, new_schema = _json_schema(before), _json_schema(after)
    if old_schema is not None and new_schema is not None:
        _compare_input(old_schema, new_schema, old_spec, new_spec, f"{where} body", problems)


def _json_schema(part: Mapping[str, Any]) -> Mapping[str, Any] | None:
    content = part.get("content", {})
    for media in ("application/json", "application/problem+json"):
        if media in content and "schema" in content[media]:
            schema: Mapping[str, Any] = content[media]["schema"]
            return schema
    return None
