"""A template's ``outputs:``, computed as Heat computes them: each value is
evaluated like a property (``get_attr`` of a deployment known once its
server reported), an output whose ``condition:`` is false has no value
(``None``), as in Heat. A value setpoint cannot compute (an attribute of a
resource it does not manage) is a warning, never an error: Heat computes
it, and nothing setpoint runs depends on it."""

from __future__ import annotations

from typing import Any

from setpoint.controller.definitions.checks import Where
from setpoint.controller.definitions.heat.intrinsics import Evaluator
from setpoint.controller.definitions.heat.resources import TemplateScope, walk_refs
from setpoint.controller.definitions.intrinsics import ABSENT, INVALID
from setpoint.controller.definitions.model import StackOutput
from setpoint.controller.definitions.yamlsource import YMap

OUTPUT_KEYS = ("value", "description", "condition")
# The problems of a reference to what setpoint does not manage.
UNKNOWABLE = ("get_attr:", "get_resource:")


def read_outputs(
    scope: TemplateScope, evaluator: Evaluator, m: YMap, where: Where
) -> dict[str, StackOutput]:
    """Every output of the template, by name."""
    checks = scope.checks
    raw = m.get("outputs")
    ow = where.at(m, "outputs")
    if raw is None or checks.mapping(raw, ow, "outputs") is None:
        return {}
    outputs: dict[str, StackOutput] = {}
    for oname, body in raw.items():
        c = ow.at(raw, oname)
        bm = checks.mapping(body, c, "an output")
        if bm is None:
            continue
        allowed = OUTPUT_KEYS if scope.version.conditions else OUTPUT_KEYS[:2]
        checks.check_keys(bm, c, allowed)
        description = bm.get("description")
        output = StackOutput(
            name=str(oname),
            description=description if isinstance(description, str) else "",
            value=None,
            file=scope.path,
            line=c.line,
        )
        if "condition" in bm and "condition" in allowed:
            truth = evaluator.conditions.truth(bm["condition"], c.at(bm, "condition"))
            if truth is not True:
                outputs[output.name] = output  # false (or reported): no value
                continue
        outputs[output.name] = _computed(scope, evaluator, output, bm, c)
    return outputs


def param_names(value: Any) -> set[str]:
    """The parameters a snippet reads with ``get_param``."""
    if isinstance(value, dict):
        if len(value) == 1 and "get_param" in value:
            arg = value["get_param"]
            name = arg[0] if isinstance(arg, list) and arg else arg
            if isinstance(name, str):
                return {name}
        return {n for v in value.values() for n in param_names(v)}
    if isinstance(value, list):
        return {n for v in value for n in param_names(v)}
    return set()


def _computed(
    scope: TemplateScope, evaluator: Evaluator, output: StackOutput, bm: YMap, c: Where
) -> StackOutput:
    checks = scope.checks
    vc = c.at(bm, "value")
    for ref in sorted(walk_refs(bm.get("value"), evaluator.branch)):
        if ref not in scope.resources:
            checks.error(vc, f"output {output.name!r}: {scope.unknown_resource(ref)}")
            return output
    before = len(checks.problems)
    value = evaluator.evaluate(bm.get("value"), vc)
    found = checks.problems[before:]
    errors = [p for p in found if p.severity == "error"]
    if not errors and value is not INVALID:
        value = None if value is ABSENT else value
        secret = bool(param_names(bm.get("value")) & scope.hidden)
        return StackOutput(
            output.name, output.description, value, output.file, output.line, secret=secret
        )
    why = errors[0].message if errors else "its value cannot be evaluated"
    # An attribute setpoint cannot know (of a network, of a server) is Heat's to
    # give: a warning. Any other problem is a mistake in the template.
    if all(p.message.startswith(UNKNOWABLE) for p in errors):
        del checks.problems[before:]
        checks.problems.extend(p for p in found if p.severity != "error")
        checks.warn(vc, f"output {output.name!r} is not computed by setpoint: {why}")
    return StackOutput(
        output.name, output.description, None, output.file, output.line, not_computed=why
    )
