"""Heat's data functions on plain values, with Heat's semantics and messages
(``heat/engine/hot/functions.py``): ``list_join``, ``str_replace`` and its strict forms,
``str_split``, ``map_merge``, ``map_replace``, ``list_concat(_unique)``,
``repeat``, ``digest``, ``contains``, ``filter``, ``make_url``, ``yaql`` and
``equals``.

Each ``Builtin`` has two checks, as Heat has: ``shape`` looks at the
arguments as written (Heat's parse time, so a mistake is found even when a
value is reported only later), ``apply`` computes from the resolved
arguments and raises ``FunctionError`` when they do not fit (at load time,
or at render time over reported values).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib import parse as urlparse

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.heat.functions import str_replace
from setpoint.controller.definitions.heat.versions import TemplateVersion
from setpoint.controller.definitions.heat.yaql_engine import yaql_check, yaql_evaluate
from setpoint.controller.definitions.intrinsics import INVALID
from setpoint.controller.definitions.model import ComputeError


class FunctionError(ComputeError):
    """A function's arguments do not fit; the message is Heat's."""


# Heat takes any algorithm the machine's hashlib offers; a render must give the
# same digest on every machine, so setpoint takes those every build has.
DIGEST_ALGORITHMS = tuple(sorted(a for a in hashlib.algorithms_guaranteed if "shake" not in a))


@dataclass(frozen=True)
class Builtin:
    """``shape(written args)`` gives a problem or ``None``; ``apply(args)`` the value."""

    shape: Callable[[Any], str | None]
    apply: Callable[[Any], Any]


# How a data function's value is made from its evaluated arguments: now, or
# as a ``Computed`` when an argument is known only once reported.
Compute = Callable[[str, Callable[[Any], Any], Any], Any]


def call_builtin(
    fn: str,
    builtin: Builtin,
    arg: Any,
    c: Where,
    checks: Checks,
    evaluate: Callable[[Any, Where], Any],
    compute: Compute,
) -> Any:
    """A data function called at ``c``: its arguments checked as written, then
    evaluated, then ``compute(fn, apply, args)``; a problem is reported
    (``INVALID``)."""
    problem = builtin.shape(arg)
    if problem is not None:
        checks.error(c, problem)
        return INVALID
    got = evaluate(arg, c)
    if got is INVALID:
        return INVALID
    try:
        return compute(fn, builtin.apply, got)
    except FunctionError as exc:
        checks.error(c, str(exc))
        return INVALID


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _pair(fn: str, example: str) -> Callable[[Any], str | None]:
    """A check that the arguments are a list of two (Heat's ``[a, b]`` functions)."""

    def shape(args: Any) -> str | None:
        if not _is_list(args) or len(args) != 2:
            return f'Arguments to "{fn}" must be of the form: {example}'
        return None

    return shape


# -- str_replace, str_replace_strict, str_replace_vstrict ----------------------------


def _replace_shape(fn: str) -> Callable[[Any], str | None]:
    def shape(args: Any) -> str | None:
        if not isinstance(args, dict):
            return f'Arguments to "{fn}" must be a map'
        if "params" not in args or "template" not in args:
            return f'"{fn}" syntax should be {{template: ..., params: {{...}}}}'
        return None

    return shape


def _replace(fn: str, strict: bool, allow_empty: bool, json_values: bool) -> Builtin:
    def apply(args: dict[str, Any]) -> str:
        template, params = args["template"], args["params"]
        if not isinstance(template, str):
            raise FunctionError(f'"{fn}" template must be a string')
        if not isinstance(params, dict):
            raise FunctionError(f'"{fn}" params must be a map')
        for key, value in params.items():
            if not isinstance(key, str):
                raise FunctionError(f'"{fn}" param placeholders must be strings')
            _check_replacement(fn, key, value, allow_empty, json_values)
        found: set[str] = set()
        text = str_replace(template, params, found)
        missing = sorted(sorted(set(params) - found), key=len, reverse=True)
        if strict and missing:
            raise FunctionError(
                f"The following params were not found in the template: {','.join(missing)}"
            )
        return text

    return Builtin(_replace_shape(fn), apply)


def _check_replacement(fn: str, key: str, value: Any, allow_empty: bool, json_values: bool) -> None:
    empty = value is None or (isinstance(value, str | list | dict) and len(value) == 0)
    if empty and not allow_empty:
        raise FunctionError(
            f"{fn} has an undefined or empty value for param {key}, must be a defined "
            "non-empty value"
        )
    if isinstance(value, list | dict) and not json_values:
        raise FunctionError(f'"{fn}" params must be strings or numbers, param {key} is not valid')
    if value is not None and not isinstance(value, str | int | float | bool | list | dict):
        raise FunctionError(f'"{fn}" params must be strings, numbers, list or map.')


# -- list_join ---------------------------------------------------------------------

JOIN_EXAMPLE = '"list_join" : [ " ", [ "str1", "str2"] ...]'


def _join(version: TemplateVersion) -> Builtin:
    """Heat's ``list_join``: one list of strings; from 2015-10-15 several lists,
    whose maps and lists are put in as JSON (sorted keys)."""
    several = version.str_replace_json  # the same version brought both

    def shape(args: Any) -> str | None:
        sizes_ok = len(args) >= 2 if several else len(args) == 2
        if not _is_list(args) or not sizes_ok:
            return f'Incorrect arguments to "list_join" should be: {JOIN_EXAMPLE}'
        return None

    def text(item: Any) -> str:
        if item is None:
            return ""
        if isinstance(item, str):
            return item
        if several and isinstance(item, list | dict):
            return json.dumps(item, sort_keys=True)
        kinds = "string, map or list" if several else "strings"
        raise FunctionError(f"Items to join must be {kinds} not {repr(item)[:200]}")

    def apply(args: list[Any]) -> str:
        items: list[Any] = []
        for joined in args[1:]:
            if not joined:
                continue
            if not isinstance(joined, list):
                raise FunctionError('"list_join" must operate on a list')
            items += joined
        if not isinstance(args[0], str):
            raise FunctionError('"list_join" delimiter must be a string')
        return args[0].join(text(item) for item in items)

    return Builtin(shape, apply)


# -- str_split, digest, make_url -----------------------------------------------------

SPLIT_EXAMPLE = '"str_split" : [ ",", "apples,pears", <index>]'


def _split_shape(args: Any) -> str | None:
    if not _is_list(args):
        return f'Incorrect arguments to "str_split" should be: {SPLIT_EXAMPLE}'
    return None


def str_split(args: list[Any]) -> Any:
    if len(args) < 2:
        raise FunctionError(f'Incorrect arguments to "str_split" should be: {SPLIT_EXAMPLE}')
    delimiter, text = args[0], args[1]
    if text is None:
        return None
    if not isinstance(delimiter, str) or not isinstance(text, str):
        raise FunctionError('"str_split" splits a string by a string delimiter')
    parts = text.split(delimiter)
    if len(args) == 2:
        return parts
    try:
        index = int(args[2])
    except (TypeError, ValueError):
        raise FunctionError(f'Incorrect index to "str_split" should be: {SPLIT_EXAMPLE}') from None
    try:
        return parts[index]
    except IndexError:
        raise FunctionError(
            f'Incorrect index to "str_split" should be between 0 and {len(parts) - 1}'
        ) from None


def _digest_shape(args: Any) -> str | None:
    if not _is_list(args):
        return 'Argument to function "digest" must be a list of strings'
    if len(args) != 2:
        return 'Function "digest" usage: ["<algorithm>", "<value>"]'
    return None


def digest(args: list[Any]) -> str:
    if not all(isinstance(a, str) for a in args):
        raise FunctionError('Argument to function "digest" must be a list of strings')
    algorithm, value = args
    if algorithm.lower() not in DIGEST_ALGORITHMS:
        raise FunctionError(f"Algorithm must be one of {', '.join(DIGEST_ALGORITHMS)}")
    try:
        data = value.encode("latin-1")  # Heat hashes six.b(value): Latin-1 bytes
    except UnicodeEncodeError:
        raise FunctionError(
            '"digest" hashes Latin-1 text; the value has characters outside it'
        ) from None
    return hashlib.new(algorithm.lower(), data).hexdigest()


URL_KEYS = ("scheme", "username", "password", "host", "port", "path", "query", "fragment")


def _url_shape(args: Any) -> str | None:
    if not isinstance(args, dict):
        return 'The arguments to "make_url" must be a map'
    invalid = [k for k in args if k not in URL_KEYS]
    if invalid:
        return f'Invalid arguments to "make_url": {", ".join(map(str, invalid))}'
    return None


def _url_part_check(args: dict[str, Any]) -> None:
    for key, value in args.items():
        if key == "query":
            if not isinstance(value, dict):
                raise FunctionError('The "query" argument to "make_url" must be a map')
        elif key == "port":
            try:
                port = value if isinstance(value, int) else int(value)
            except (TypeError, ValueError):
                raise FunctionError(
                    f'Invalid URL port "{value}" for make_url called with {args}'
                ) from None
            if not 0 < port <= 65535:
                raise FunctionError(f"Invalid URL port {port}, must be in range 1-65535")
        elif not isinstance(value, str):
            raise FunctionError(f'The "{key}" argument to "make_url" must be a string')


def make_url(args: dict[str, Any]) -> str:
    _url_part_check(args)
    scheme = args.get("scheme", "")
    if ":" in scheme:
        raise FunctionError("URL \"scheme\" should not contain ':'")
    netloc = ""
    username = urlparse.quote(args.get("username", ""), safe="")
    password = urlparse.quote(args.get("password", ""), safe="")
    if username or password:
        netloc = username + (":" + password if password else "") + "@"
    host = args.get("host", "")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = urlparse.quote(host, safe=":")
    netloc += f"[{host}]" if ":" in host else host
    if args.get("port", ""):
        netloc += f":{args['port']}"
    path = urlparse.quote(args.get("path", ""))
    query = urlparse.urlencode(args.get("query", {})).replace("%2F", "/")
    fragment = urlparse.quote(args.get("fragment", ""))
    return str(urlparse.urlunsplit((scheme, netloc, path, query, fragment)))


# -- maps and lists ------------------------------------------------------------------

MERGE_EXAMPLE = '"map_merge" : [ { "key1": "val1" }, { "key2": "val2" } ]'
MAP_REPLACE_EXAMPLE = (
    '"map_replace" : [ { "key1": "val1" }, {"keys": {"key1": "key2"}, "values": {"val1": "val2"}}]'
)


def map_merge(args: Any) -> dict[str, Any]:
    if not _is_list(args):
        raise FunctionError(f'Incorrect arguments to "map_merge" should be: {MERGE_EXAMPLE}')
    merged: dict[str, Any] = {}
    for item in args:
        if item is None:
            continue
        if not isinstance(item, dict):
            raise FunctionError("Incorrect arguments: Items to merge must be maps.")
        merged.update(item)
    return merged


def _map_or_empty(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FunctionError(
            'Incorrect arguments: to "map_replace", arguments must be a list of maps. '
            f"Example:  {MAP_REPLACE_EXAMPLE}"
        )
    return value


def _map_replace_shape(args: Any) -> str | None:
    if not _is_list(args) or len(args) != 2:
        return f'Incorrect arguments to "map_replace" should be: {MAP_REPLACE_EXAMPLE}'
    return None


def map_replace(args: list[Any]) -> dict[str, Any]:
    source, replacements = _map_or_empty(args[0]), _map_or_empty(args[1])
    if any(k not in ("keys", "values") for k in replacements):
        raise FunctionError(
            f'Incorrect arguments to "map_replace" should be: {MAP_REPLACE_EXAMPLE}'
        )
    keys = _map_or_empty(replacements.get("keys"))
    values = _map_or_empty(replacements.get("values"))
    out: dict[str, Any] = {}
    for key, value in source.items():
        new = keys.get(key)
        if new is None:
            new = key
        elif new in source and new != key:
            raise FunctionError(f"key replacement {new} collides with a key in the input map")
        elif new in out:
            raise FunctionError(f"key replacement {new} collides with a key in the output map")
        hashable = not isinstance(value, list | dict)
        out[new] = values.get(value, value) if hashable else value
    return out


def _concat(fn: str, unique: bool) -> Builtin:
    example = f'"{fn}" : [ [ <value 1>, <value 2> ], [ <value 3>, <value 4> ] ]'

    def shape(args: Any) -> str | None:
        return None if _is_list(args) else f'Incorrect arguments to "{fn}" should be: {example}'

    def apply(args: Any) -> list[Any]:
        if not _is_list(args):
            raise FunctionError(f'Incorrect arguments to "{fn}" should be: {example}')
        out: list[Any] = []
        for item in args:
            if item is None:
                continue
            if not isinstance(item, list):
                raise FunctionError("Incorrect arguments: Items to concat must be lists.")
            out.extend(item)
        if unique:
            # Heat's own loop: every earlier copy goes, the last one stays.
            for item in out:
                while out.count(item) > 1:
                    del out[out.index(item)]
        return out

    return Builtin(shape, apply)


def _filter_shape(args: Any) -> str | None:
    if not _is_list(args):
        return 'Argument to "filter" must be a list'
    if len(args) != 2:
        return (
            '"filter" expected 2 arguments of the form [values, sequence] but got '
            f"{len(args)} arguments instead"
        )
    return None


def filter_values(args: list[Any]) -> Any:
    values, sequence = args
    if not sequence:
        return sequence
    if not isinstance(sequence, list):
        raise FunctionError('"filter" only works with lists')
    if not values:
        return sequence
    if not isinstance(values, list):
        raise FunctionError('"filter" filters a list of values')
    return [item for item in sequence if item not in values]


def contains(args: list[Any]) -> bool:
    value, sequence = args
    if not isinstance(sequence, list | str):
        raise FunctionError('Second argument to "contains" should be a sequence.')
    if isinstance(sequence, str) and not isinstance(value, str):
        return False
    return value in sequence


def equals(args: list[Any]) -> bool:
    return bool(args[0] == args[1])


# -- repeat --------------------------------------------------------------------------

REPEAT_EXAMPLE = "repeat: {template: This is %var%, for_each: {%var%: [a, b, c]}}"


def _repeat_shape(version: TemplateVersion) -> Callable[[Any], str | None]:
    def shape(args: Any) -> str | None:
        if not isinstance(args, dict):
            return 'Arguments to "repeat" must be a map'
        if "for_each" not in args or "template" not in args:
            return f'"repeat" syntax should be {REPEAT_EXAMPLE}'
        permutations = args.get("permutations", True)
        if version.repeat_permutations and not isinstance(permutations, bool):
            return '"permutations" should be boolean type for repeat function.'
        if isinstance(args["for_each"], list | str):
            return 'The "for_each" argument to "repeat" must contain a map'
        return None

    return shape


def _repeat(version: TemplateVersion) -> Builtin:
    def loops(for_each: dict[str, Any], nested: bool) -> list[list[Any]]:
        """The values each placeholder takes (a map's keys, from 2016-10-14)."""
        maps_too = nested and version.repeat_over_maps
        lists: list[list[Any]] = []
        for value in for_each.values():
            if value is None:
                lists.append([])
            elif isinstance(value, list) or (maps_too and isinstance(value, dict)):
                lists.append(list(value))
            else:
                kinds = "lists or maps" if maps_too else "lists"
                raise FunctionError(
                    f'The values of the "for_each" argument to "repeat" must be {kinds}'
                )
        return lists

    def apply(args: dict[str, Any]) -> list[Any]:
        for_each = args["for_each"]
        if not isinstance(for_each, dict):
            raise FunctionError('The "for_each" argument to "repeat" must contain a map')
        nested = args.get("permutations", True) if version.repeat_permutations else True
        lists = loops(for_each, nested)
        if not nested and len({len(v) for v in lists}) > 1:
            raise FunctionError(
                "For repeat, the length of for_each values should be equal if no nested loop."
            )
        keys = list(for_each)
        combos = itertools.product(*lists) if nested else zip(*lists, strict=False)
        return [_put_in(keys, list(combo), args["template"]) for combo in combos]

    return Builtin(_repeat_shape(version), apply)


def _put_in(keys: list[str], values: list[Any], template: Any) -> Any:
    """Every placeholder of ``keys`` in ``template``'s text (keys of maps too)
    replaced by its value, in the order of ``for_each``, as Heat does."""
    if isinstance(template, str):
        for key, value in zip(keys, values, strict=True):
            if not isinstance(value, str):
                raise FunctionError(
                    f"repeat: {key} is replaced in text, so its values must be strings "
                    f"(got {json.dumps(value)})"
                )
            template = template.replace(key, value)
        return template
    if isinstance(template, list):
        return [_put_in(keys, values, item) for item in template]
    if isinstance(template, dict):
        return {_put_in(keys, values, k): _put_in(keys, values, v) for k, v in template.items()}
    return template


# -- yaql ----------------------------------------------------------------------------

YAQL_EXAMPLE = "yaql: {expression: $.data.var1.sum(), data: {var1: [3, 2, 1]}}"


def _yaql_shape(args: Any) -> str | None:
    if not isinstance(args, dict):
        return 'Arguments to "yaql" must be a map.'
    if "expression" not in args or set(args) - {"expression", "data"}:
        return f'"yaql" syntax should be {YAQL_EXAMPLE}'
    expression = args["expression"]
    if isinstance(expression, dict):  # a function: checked once it is known
        return None
    if not isinstance(expression, str):
        return 'The "expression" argument to yaql must contain a string.'
    return yaql_check(expression)


def yaql(args: dict[str, Any]) -> Any:
    expression = args["expression"]
    if not isinstance(expression, str):
        raise FunctionError('The "expression" argument to yaql must contain a string.')
    ok, value = yaql_evaluate(expression, args.get("data", {}))
    if not ok:
        raise FunctionError(str(value))
    return value


def builtins_of(version: TemplateVersion) -> dict[str, Builtin]:
    """The data functions of templates of ``version`` (those it has)."""
    json_values = version.str_replace_json
    table = {
        "list_join": _join(version),
        "str_replace": _replace("str_replace", False, True, json_values),
        "str_replace_strict": _replace("str_replace_strict", True, True, json_values),
        "str_replace_vstrict": _replace("str_replace_vstrict", True, False, json_values),
        "str_split": Builtin(_split_shape, str_split),
        "map_merge": Builtin(lambda _a: None, map_merge),
        "map_replace": Builtin(_map_replace_shape, map_replace),
        "list_concat": _concat("list_concat", unique=False),
        "list_concat_unique": _concat("list_concat_unique", unique=True),
        "repeat": _repeat(version),
        "digest": Builtin(_digest_shape, digest),
        "contains": Builtin(_pair("contains", "[value1, [value1, value2]]"), contains),
        "filter": Builtin(_filter_shape, filter_values),
        "make_url": Builtin(_url_shape, make_url),
        "yaql": Builtin(_yaql_shape, yaql),
    }
    return {name: fn for name, fn in table.items() if version.has(name)}


EQUALS = Builtin(_pair("equals", "[value_1, value_2]"), equals)
