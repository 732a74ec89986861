"""References between deployments (``get_attr``, ``depends_on``), collected
while stacks are read and checked once every stack is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.model import Component, Deployment, GetAttr, Stack


def qualify(stack: str, name: str) -> str:
    """``<stack>/<deployment>``: a name without a stack is in ``stack``."""
    return name if "/" in name else f"{stack}/{name}"


def find_deployment(stacks: dict[str, Stack], qualified: str) -> Deployment | None:
    stack_name, _, dep_name = qualified.partition("/")
    stack = stacks.get(stack_name)
    return stack.deployments.get(dep_name) if stack else None


@dataclass
class References:
    """The references read so far, with where each was written."""

    checks: Checks
    # (stack, deployment, [(qualified upstream, where)]) of every ``depends_on``.
    depends: list[tuple[str, str, list[tuple[str, Where]]]] = field(default_factory=list)
    attrs: list[tuple[GetAttr, Where]] = field(default_factory=list)

    def check(self, stacks: dict[str, Stack], components: dict[str, Component]) -> None:
        """Every reference names a deployment (and output, and server) that exists."""
        for ref, c in self.attrs:
            self._check_attr(ref, c, stacks, components)
        for stack, name, depends in self.depends:
            for dep, c in depends:
                if dep == f"{stack}/{name}":
                    self.checks.error(c, "a deployment cannot depend on itself")
                elif find_deployment(stacks, dep) is None:
                    self.checks.error(c, f"depends_on: unknown deployment {dep!r}")

    def _check_attr(
        self, ref: GetAttr, c: Where, stacks: dict[str, Stack], components: dict[str, Component]
    ) -> None:
        target = find_deployment(stacks, ref.deployment)
        if target is None:
            self.checks.error(c, f"get_attr: unknown deployment {ref.deployment!r}")
            return
        component = components.get(target.component)
        if component is not None and component.output(ref.output) is None:
            known = ", ".join(o.name for o in component.outputs) or "none"
            self.checks.error(
                c,
                f"get_attr: component {component.name!r} of {ref.deployment!r} has no "
                f"output {ref.output!r} (outputs: {known})",
            )
        if ref.server is not None and ref.server not in target.servers:
            self.checks.error(
                c, f"get_attr: {ref.deployment!r} does not run on server {ref.server!r}"
            )
