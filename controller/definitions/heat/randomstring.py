"""``OS::Heat::RandomString`` without randomness: rendering is a pure function,
so its ``value`` is derived from a secret the controller holds (the render
secret, see ``render_secret``) by HMAC-SHA256 of the stack, the resource's
path and its properties. The same secret gives the same value on every render
and every machine; another secret, another value; and nobody without the
secret can tell it from the commit.

Heat's rules are kept: ``length`` (default 32), ``character_classes`` (each
``class`` with a ``min``, default 1), ``character_sequences`` (each a
``sequence`` with a ``min``), ``lettersdigits`` when neither is given; ``min``
characters are drawn from each class or sequence, the rest from all of them,
and the whole is shuffled (Heat's ``password_gen``). Changing ``salt``, as in
Heat, gives a new value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
from collections.abc import Callable
from typing import Any

from setpoint.controller.definitions.checks import Where
from setpoint.controller.definitions.heat.resources import (
    RANDOM_STRING,
    Resource,
    TemplateScope,
)
from setpoint.controller.definitions.heat.secrets import SecretText
from setpoint.controller.definitions.intrinsics import INVALID
from setpoint.controller.definitions.yamlsource import YList, YMap

CLASSES = {
    "lettersdigits": string.ascii_letters + string.digits,
    "letters": string.ascii_letters,
    "lowercase": string.ascii_lowercase,
    "uppercase": string.ascii_uppercase,
    "digits": string.digits,
    "hexdigits": string.digits + "abcdef" + "ABCDEF",
    "octdigits": string.octdigits,
}
KEYS = ("length", "character_classes", "character_sequences", "salt")
MAX_LENGTH = 512  # Heat's range for length and for each min


class DrawStream:
    """Uniform draws from HMAC-SHA256(secret, message || counter) blocks."""

    def __init__(self, secret: bytes, message: bytes) -> None:
        self.secret = secret
        self.message = message
        self.counter = 0
        self.pool = b""

    def _word(self) -> int:
        if len(self.pool) < 4:
            block = self.counter.to_bytes(8, "big")
            self.counter += 1
            self.pool += hmac.new(self.secret, self.message + block, hashlib.sha256).digest()
        word, self.pool = self.pool[:4], self.pool[4:]
        return int.from_bytes(word, "big")

    def below(self, n: int) -> int:
        """A number in [0, n), without modulo bias (draws over the cut are redrawn)."""
        limit = (1 << 32) - (1 << 32) % n
        while True:
            word = self._word()
            if word < limit:
                return word % n


def derive(
    secret: bytes, identity: dict[str, Any], length: int, pools: list[tuple[str, int]]
) -> str:
    """Heat's password_gen with HMAC draws: ``min`` from each pool, the rest from
    their union, shuffled (Fisher-Yates). ``identity`` names the value."""
    message = json.dumps(
        {**identity, "length": length, "pools": pools}, sort_keys=True, separators=(",", ":")
    ).encode()
    draws = DrawStream(secret, message)
    chars: list[str] = []
    union = sorted({c for pool, _ in pools for c in pool})
    for pool, minimum in pools:
        ordered = sorted(set(pool))
        chars += [ordered[draws.below(len(ordered))] for _ in range(minimum)]
    chars += [union[draws.below(len(union))] for _ in range(max(length - len(chars), 0))]
    for i in range(len(chars) - 1, 0, -1):
        j = draws.below(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


class RandomStrings:
    """The RandomString resources of one template, each derived once."""

    def __init__(
        self, scope: TemplateScope, secret: bytes | None, evaluate: Callable[[Any, Where], Any]
    ) -> None:
        self.scope = scope
        self.checks = scope.checks
        self.secret = secret
        self.evaluate = evaluate
        self.values: dict[str, Any] = {}

    def handles(self, res: Resource) -> bool:
        return res.type == RANDOM_STRING

    def attr(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any:
        if attribute != "value" or path:
            self.checks.error(
                c, f"get_attr: a RandomString has one attribute, value (got {attribute!r})"
            )
            return INVALID
        return self.value(res, c)

    def attribute_names(self, res: Resource, c: Where) -> tuple[str, ...]:
        return ("value",)

    def value(self, res: Resource, c: Where) -> Any:
        if res.name not in self.values:
            self.values[res.name] = self.read(res, c)
        return self.values[res.name]

    def read(self, res: Resource, c: Where) -> Any:
        props, pc = res.props, res.props_where
        self.checks.check_keys(props, pc, KEYS)
        length = self.number(props, "length", pc, 32)
        pools = self.pools(props, pc)
        if length is None or pools is None:
            return INVALID
        if sum(m for _, m in pools) > length:
            self.checks.error(
                pc.at(props, "length"),
                "Length property cannot be smaller than combined character class and "
                "character sequence minimums",
            )
            return INVALID
        if self.secret is None:
            self.checks.error(
                c,
                f"{RANDOM_STRING} {res.name!r} needs the controller's render secret: give "
                "--render-secret FILE or $SETPOINT_RENDER_SECRET, or keep NAME.render-secret "
                "beside the signing key ('setpoint keygen' creates both)",
            )
            return INVALID
        salt = self.evaluate(props["salt"], pc.at(props, "salt")) if "salt" in props else ""
        identity = {
            "stack": self.scope.stem,
            "resource": self.scope.prefix + res.name,
            "salt": str(salt),
        }
        return SecretText(derive(self.secret, identity, length, pools))

    def number(self, m: YMap, key: str, c: Where, default: int) -> int | None:
        value = self.evaluate(m[key], c.at(m, key)) if key in m else default
        if value is INVALID:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LENGTH:
            self.checks.error(c.at(m, key), f"{key} must be a number from 1 to {MAX_LENGTH}")
            return None
        return value

    def pools(self, props: YMap, pc: Where) -> list[tuple[str, int]] | None:
        """(characters, min) of each class, then each sequence; ``lettersdigits``
        when there is neither."""
        pools: list[tuple[str, int]] = []
        ok = True
        for key, field, known in (
            ("character_classes", "class", CLASSES),
            ("character_sequences", "sequence", None),
        ):
            raw = props.get(key)
            if raw is None:
                continue
            kc = pc.at(props, key)
            if not isinstance(raw, YList):
                self.checks.error(kc, f"expected a list of {key}")
                ok = False
                continue
            for index, item in enumerate(raw):
                ic = kc.at(raw, index)
                got = self.pool(item, ic, field, known)
                ok = ok and got is not None
                if got is not None:
                    pools.append(got)
        if not ok:
            return None
        return pools or [(CLASSES["lettersdigits"], 1)]

    def pool(
        self, item: Any, ic: Where, field: str, known: dict[str, str] | None
    ) -> tuple[str, int] | None:
        if not isinstance(item, YMap):
            self.checks.error(ic, f"expected a mapping with {field} and min")
            return None
        self.checks.check_keys(item, ic, (field, "min"), (field,))
        minimum = self.number(item, "min", ic, 1)
        chars = item.get(field)
        if known is not None:
            if chars not in known:
                self.checks.error(
                    ic.at(item, field), f"unknown class {chars!r} (one of {', '.join(known)})"
                )
                return None
            chars = known[chars]
        elif not isinstance(chars, str) or not chars:
            self.checks.error(ic.at(item, field), "expected a sequence: a non-empty string")
            return None
        return None if minimum is None else (chars, minimum)
