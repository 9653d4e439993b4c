"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) on plain JSON values."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: dicts merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer: {pointer!r}")
    return [_unescape(token) for token in pointer[1:].split("/")]


def _resolve_parent(document: Any, tokens: list[str]) -> Any:
    node = document
    for token in tokens[:-1]:
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, f"the path {'/'.join(tokens)!r} does not exist") from exc
    return node


def _get(document: Any, pointer: str) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return document
    parent = _resolve_parent(document, tokens)
    try:
        return parent[int(tokens[-1])] if isinstance(parent, list) else parent[tokens[-1]]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, f"the path {pointer!r} does not exist") from exc


def _remove(document: Any, pointer: str) -> Any:
    tokens = _split_pointer(pointer)
    parent = _resolve_parent(document, tokens)
    try:
        return parent.pop(int(tokens[-1]) if isinstance(parent, list) else tokens[-1])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, f"the path {pointer!r} does not exist") from exc


def _add(document: Any, pointer: str, value: Any, replace: bool) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return value
    parent = _resolve_parent(document, tokens)
    key = tokens[-1]
    if isinstance(parent, list):
        index = len(parent) if key == "-" else int(key)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    elif isinstance(parent, dict):
        if replace and key not in parent:
            raise ApiError(422, f"the path {pointer!r} does not exist")
        parent[key] = value
    else:
        raise ApiError(422, f"the path {pointer!r} does not exist")
    return document


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise ApiError(400, "a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op == "add":
            document = _add(document, path, copy.deepcopy(operation["value"]), replace=False)
        elif op == "replace":
            document = _add(document, path, copy.deepcopy(operation["value"]), replace=True)
        elif op == "remove":
            _remove(document, path)
        elif op == "move":
            document = _add(document, path, _remove(document, operation["from"]), replace=False)
        elif op == "copy":
            document = _add(document, path, copy.deepcopy(_get(document, operation["from"])), replace=False)
        elif op == "test":
            if _get(document, path) != operation.get("value"):
                raise ApiError(422, f"test operation failed at {path!r}")
        else:
            raise ApiError(400, f"unknown JSON patch operation: {op!r}")
    return document
