"""JSON schemas as clients send them, made whole for a grammar: local references resolved where a
grammar converter cannot follow them.

Pydantic (and so LangChain, the OpenAI Agents SDK, LlamaIndex) writes nested models as `$defs`
with `$ref`s; older tools write `definitions`; a recursive schema points at `#`. A tool's
parameters are also wrapped in a call object before they become a grammar, which moves their
root: every definition is lifted to one `$defs` at the root (under a prefix per tool), every
reference rewritten to it, a root reference turned into a named definition, so recursion stays
recursion (a grammar rule that names itself) and nothing points nowhere.
"""

from __future__ import annotations

import copy
import re
from typing import Any

# Definition names as grammar rule names are written (llama.cpp's converter makes anything else a
# dash, but not in every place it names a rule).
_NAME = re.compile(r"[^A-Za-z0-9-]")
ROOT = "Self"  # the definition a reference to '#' becomes


class SchemaError(ValueError):
    """A schema no grammar can be made from, in words naming what is wrong."""


def _defs_name(prefix: str, name: str) -> str:
    return prefix + _NAME.sub("-", name)


def lift(schema: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(the schema without its definitions, its definitions): references rewritten to
    '#/$defs/<prefix><name>', a reference to '#' to the schema itself as '<prefix>Self'."""
    schema = copy.deepcopy(schema)
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.pop(key, None)
        if found is None:
            continue
        if not isinstance(found, dict):
            raise SchemaError(f"'{key}' must be an object of named schemas")
        for name, sub in found.items():
            defs[_defs_name(prefix, str(name))] = sub
    uses_root = False
    named: dict[str, str] = {}  # definition -> the reference as written

    def rewrite(node: Any, depth: int = 0) -> Any:
        nonlocal uses_root
        if depth > 64:
            raise SchemaError("the schema nests deeper than 64 levels")
        if isinstance(node, list):
            return [rewrite(x, depth + 1) for x in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "$ref":
                if not isinstance(value, str):
                    raise SchemaError("a '$ref' must be a string")
                out[key] = _reference(value, prefix)
                uses_root = uses_root or out[key] == f"#/$defs/{prefix}{ROOT}"
                named.setdefault(out[key].removeprefix("#/$defs/"), value)
            elif key in ("$defs", "definitions") and depth > 0:
                raise SchemaError(f"'{key}' is only read at a schema's root")
            else:
                out[key] = rewrite(value, depth + 1)
        return out

    body = rewrite(schema)
    defs = {name: rewrite(sub, 1) for name, sub in defs.items()}
    for name, written in named.items():
        if name not in defs and name != prefix + ROOT:
            raise SchemaError(f"the reference '{written}' names no definition")
    if uses_root:
        defs[prefix + ROOT] = body
        body = {"$ref": f"#/$defs/{prefix}{ROOT}"}
    return body, defs


def _reference(ref: str, prefix: str) -> str:
    if ref == "#":
        return f"#/$defs/{prefix}{ROOT}"
    for base in ("#/$defs/", "#/definitions/"):
        if ref.startswith(base) and "/" not in ref[len(base) :]:
            return f"#/$defs/{_defs_name(prefix, ref[len(base) :])}"
    raise SchemaError(
        f"the reference '{ref}' points outside the schema's own definitions (only '#', '#/$defs/NAME' "
        "and '#/definitions/NAME' are followed)"
    )


def whole(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema ready for a grammar: definitions at the root, a root that is no bare reference."""
    body, defs = lift(schema)
    while isinstance(body, dict) and set(body) == {"$ref"}:
        name = body["$ref"].removeprefix("#/$defs/")
        if name not in defs:
            raise SchemaError(f"the reference '{body['$ref']}' names no definition")
        target = defs[name]
        if not isinstance(target, dict):
            raise SchemaError(f"the definition '{name}' is not a schema object")
        body = dict(target)
    if defs:
        body = {**body, "$defs": defs}
    return body
