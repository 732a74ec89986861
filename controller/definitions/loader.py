"""Load and check a commit's definitions into a ``Model``.

Layout of a definitions repository (read from the commit, never the working
directory):

- ``inventory.yaml``: ``servers`` (name → labels) and ``groups`` (name → servers)
  (``inventory``)
- ``components/<name>/component.yaml``: ``kind: Component`` (``components``)
- ``stacks/<name>.yaml``: ``kind: Stack`` (``stacks``, ``deployments``) or a
  Heat template (``heat``)
- ``environments/<name>.yaml``: ``kind: Environment``, read only when an
  environment is asked for: parameter values for the stacks and, optionally,
  the environment's own inventory in place of ``inventory.yaml`` (``environments``)
- ``notifications.yaml`` (optional): who is told of rollouts (``notifications``)

Every problem found is collected with its file, line and field (``checks``);
if there is any, ``InvalidDefinitions`` carries all of them and nothing may
be published.
"""

from __future__ import annotations

from collections.abc import Callable

from setpoint.controller.definitions.checks import Checks
from setpoint.controller.definitions.components import ComponentReader
from setpoint.controller.definitions.environments import EnvironmentValues
from setpoint.controller.definitions.files import CommitFiles, Tree
from setpoint.controller.definitions.inventory import read_inventory
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.notifications import read_notifications
from setpoint.controller.definitions.ordering import Ordering
from setpoint.controller.definitions.references import References
from setpoint.controller.definitions.stacks import StackReader
from setpoint.controller.errors import InvalidDefinitions, Problem


def load_model(
    tree: Tree,
    on_problem: Callable[[Problem], None] | None = None,
    env: str | None = None,
    render_secret: bytes | None = None,
) -> Model:
    """Load, check and resolve a commit's definitions, for environment ``env`` if given.

    ``render_secret`` is the controller's secret that Heat RandomString values
    derive from (``render_secret``); without it a template that uses one is invalid.

    Raises ``InvalidDefinitions`` with every problem found; warnings go to
    ``on_problem`` without failing the load.
    """
    checks = Checks()
    files = CommitFiles(tree, checks)
    environment = EnvironmentValues(checks)
    env_inventory = environment.read(files, env) if env is not None else None
    inventory = env_inventory if env_inventory is not None else read_inventory(files)
    components = ComponentReader(files).components()
    references = References(checks)
    stacks = StackReader(
        files, environment, references, components, inventory, render_secret
    ).stacks()
    environment.check_unused(stacks)
    references.check(stacks, components)
    notifications = read_notifications(files)
    ordering = Ordering(checks, stacks)
    order = ordering.order() if not _errors(checks) else ()
    # A file several stacks read (an environment file they all list) is read
    # once per stack: a problem at one place is said once.
    checks.problems = list(dict.fromkeys(checks.problems))
    errors = _errors(checks)
    if on_problem is not None:
        for p in checks.problems:
            if p.severity != "error":
                on_problem(p)
    if errors:
        raise InvalidDefinitions(tree.commit, errors)
    return Model(
        commit=tree.commit,
        components=components,
        stacks=stacks,
        inventory=inventory,
        order=order,
        environment=env,
        cycles=tuple(ordering.cycles),
        notifications=notifications,
    )


def _errors(checks: Checks) -> list[Problem]:
    return [p for p in checks.problems if p.severity == "error"]
