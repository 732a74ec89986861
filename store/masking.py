"""What people see of secret inputs: never their values.

A derived config carries its secret inputs' values (its digest must cover
them); whoever shows one to people (``setpoint plan``, ``setpoint show``, an
agent's logs) masks them the same way, with this.
"""

from __future__ import annotations

from collections.abc import Collection
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
