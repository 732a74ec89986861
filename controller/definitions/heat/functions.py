"""Heat's functions and config bodies, computed the way Heat computes them.

Pure functions of plain values: ``str_replace``, the path
selection of ``get_attr`` and of ``get_param``, ``get_input`` substitution of a
StructuredDeployment, the text of a CloudConfig and of a MultipartMime. The
MIME boundary is derived from the parts' content, never random, so the same
template always gives the same bytes (and digest).
"""

from __future__ import annotations

import email
import json
import os
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import yaml

from setpoint.store.digest import digest_bytes, hex_of


def _replacement(value: Any) -> str:
    """A ``str_replace`` value as text (Heat: None is '', containers are JSON)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def str_replace(template: str, params: dict[str, Any], found: set[str] | None = None) -> str:
    """Heat's ``str_replace``: longest placeholder first, and a value put in is
    never searched again for another placeholder. ``found`` collects the
    placeholders that occurred (``str_replace_strict`` wants every one)."""
    keys = sorted(sorted(params), key=len, reverse=True)
    texts = {k: _replacement(params[k]) for k in keys}

    def replace(text: str, rest: list[str]) -> str:
        if not rest:
            return text
        key = rest[0]
        parts = text.split(key)
        if found is not None and len(parts) > 1:
            found.add(key)
        return texts[key].join(replace(part, rest[1:]) for part in parts)

    return replace(template, keys)


def select(value: Any, path: list[Any]) -> Any:
    """Heat's ``select_from_attribute``: walk keys of maps and indexes of lists."""
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
            value = value[key]
        elif isinstance(value, list) and isinstance(key, str) and key.isdigit():
            index = int(key)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def param_path(value: Any, path: list[Any]) -> Any:
    """Heat's ``get_param`` path: keys of maps, indexes of lists (text that reads
    as an integer too, negative ones from the end); a path that leads nowhere
    gives ``''``, as in Heat."""
    for item in path:
        try:
            key = int(item) if isinstance(value, list) and isinstance(item, str) else item
            if not isinstance(value, dict | list):
                return ""
            value = value[key]
        except (KeyError, IndexError, TypeError, ValueError):
            return ""
    return value


def substitute_inputs(snippet: Any, input_key: str, inputs: dict[str, Any]) -> Any:
    """StructuredDeployment's ``parse``: ``{input_key: name}`` becomes the input's value
    (None for an unknown name, Heat's LAX validation)."""
    if isinstance(snippet, dict):
        if len(snippet) == 1:
            fn, arg = next(iter(snippet.items()))
            if fn == input_key and isinstance(arg, str):
                return inputs.get(arg)
        return {k: substitute_inputs(v, input_key, inputs) for k, v in snippet.items()}
    if isinstance(snippet, list):
        return [substitute_inputs(v, input_key, inputs) for v in snippet]
    return snippet


def input_names(snippet: Any, input_key: str) -> list[str]:
    """Every name a structured config asks for with ``{input_key: name}``."""
    if isinstance(snippet, dict):
        if len(snippet) == 1:
            fn, arg = next(iter(snippet.items()))
            if fn == input_key and isinstance(arg, str):
                return [arg]
        return [n for v in snippet.values() for n in input_names(v, input_key)]
    if isinstance(snippet, list):
        return [n for v in snippet for n in input_names(v, input_key)]
    return []


def cloud_config(data: Any) -> str:
    """OS::Heat::CloudConfig's config: ``#cloud-config`` and the map as YAML."""
    return "#cloud-config\n" + yaml.safe_dump(data, default_flow_style=False)


def _message(part: str, subtype: str, filename: str) -> MIMEText:
    charset = "us-ascii"
    try:
        part.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    msg = (
        MIMEText(part, _subtype=subtype, _charset=charset)
        if subtype
        else MIMEText(part, _charset=charset)
    )
    if filename:
        msg.add_header("Content-Disposition", "attachment", filename=filename)
    return msg


def multipart_mime(parts: list[tuple[str, str, str, str]]) -> str:
    """OS::Heat::MultipartMime's config from ``(config, type, subtype, filename)`` parts.

    As Heat: a ``multipart`` part's own parts are taken in; a text part without a
    subtype takes its filename's stem. Unlike Heat, the boundary is derived from
    the content, so the text (and its digest) is the same on every render.
    """
    subparts: list[MIMEText] = []
    for config, kind, subtype, filename in parts:
        if kind == "multipart":
            message = email.message_from_string(config)
            if not message.is_multipart():
                continue
            for sub in message.get_payload():
                assert isinstance(sub, email.message.Message)
                payload = sub.get_payload(decode=True)
                text = (
                    payload.decode(sub.get_content_charset() or "utf-8")
                    if isinstance(payload, bytes)
                    else str(sub.get_payload())
                )
                subparts.append(_message(text, sub.get_content_subtype(), sub.get_filename() or ""))
            continue
        stem = os.path.splitext(filename)[0] if filename else ""
        subparts.append(_message(config, subtype or stem, filename))
    seed = json.dumps([p.as_string() for p in subparts]).encode()
    boundary = "===============" + hex_of(digest_bytes(seed))[:19] + "=="
    return MIMEMultipart(_subparts=subparts, boundary=boundary).as_string()
