"""What people see of secret inputs: never their values.

A derived config carries its secret inputs' values (its digest must cover
them) and marks each such input ``"hidden": true``, as Heat's derived configs
do. Whoever shows one to people (``setpoint plan``, ``setpoint show``,
``setpoint status``, an agent's report and logs) masks them the same way, with
this.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

MASK = "********"


def mask_secret_inputs(body: dict[str, Any], secrets: Collection[str]) -> dict[str, Any]:
    """A copy of derived config ``body`` whose inputs named in ``secrets`` have
    their value replaced by ``"******** (secret)"``; ``body`` itself if none are."""
    if not secrets:
        return body
    inputs = [
        {**i, "value": f"{MASK} (secret)"} if i.get("name") in secrets else i
        for i in body.get("inputs", [])
    ]
    return {**body, "inputs": inputs}


def secret_values(body: Any) -> tuple[str, ...]:
    """The texts that would give away a hidden input of derived config ``body``:
    each value as printed, and as it appears inside JSON (a hook that logs its
    document escapes quotes and newlines), longest first so that a secret that
    contains another is masked whole."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    texts: set[str] = set()
    for i in inputs if isinstance(inputs, list) else []:
        if isinstance(i, dict) and i.get("hidden") is True:
            texts.update(_printed(i.get("value")))
    return tuple(sorted((t for t in texts if t), key=lambda t: (-len(t), t)))


def _printed(value: Any) -> Iterable[str]:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        yield value
        yield json.dumps(value)[1:-1]
        return
    if isinstance(value, int | float):
        yield str(value)
        return
    if isinstance(value, list):
        for item in value:
            yield from _printed(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _printed(item)
    text = json.dumps(value)
    yield text
    yield json.dumps(text)[1:-1]


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by MASK."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_values(value: Any, secrets: Collection[str]) -> Any:
    """``value`` (outputs: strings, lists, mappings) with every string masked."""
    if not secrets:
        return value
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, list):
        return [mask_values(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: mask_values(v, secrets) for k, v in value.items()}
    return value
