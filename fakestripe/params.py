"""Stripe's form encoding read back into nested values.

The Stripe client sends ``line_items[0][price_data][currency]=eur&metadata[tenant_id]=...``: keys with
bracketed parts, lists as numbered parts. :func:`decode` turns the pairs into dicts and lists.
"""
from __future__ import annotations

import re

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class BadParam(ValueError):
    """A parameter name the fake cannot read."""

    def __init__(self, param: str):
        super().__init__(f"Invalid parameter name: {param}")
        self.param = param


def decode(pairs) -> dict:
    """``[(key, value), ...]`` in Stripe's encoding → nested dicts and lists (all leaves strings)."""
    root: dict = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            raise BadParam(key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for part in parts[:-1]:
            if part == "":
                raise BadParam(key)
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadParam(key)
        last = parts[-1]
        if last == "":  # ``expand[]=x``: an unnumbered list item
            raise BadParam(key)
        node[last] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
