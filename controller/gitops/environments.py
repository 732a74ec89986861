"""Environments: the same definitions deployed to several fleets (staging, production).

``environments/<name>.yaml`` gives an environment its parameter values and,
optionally, its own inventory (the loader reads it: ``load_model(tree,
env=NAME)``). Every environment has its own store, and its own record in the
commit notes (``controller.notes``, keyed by the environment's name, or
``default`` without one).

Because a derived config's digest depends only on what the server runs, a
component with equal inputs renders to the same digest in every environment.
``setpoint plan --env production`` uses that to say which configs already
converged in staging, read from the staging records in the notes (offline: the
notes travel with the repository; the staging store need not be reachable).
"""

from __future__ import annotations

from dataclasses import dataclass

from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.environments import environment_names
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.gitops.notes import DEFAULT_ENV

__all__ = ["EnvironmentReconciler", "environment_names", "record_name"]


def record_name(env: str | None) -> str:
    """The name an environment's records go under in the notes."""
    return env or DEFAULT_ENV


@dataclass
class EnvironmentReconciler(Reconciler):
    """A ``Reconciler`` that loads the branch for one environment."""

    env: str | None = None

    def load(self) -> Model:
        tree = self.repo.tree(self.repo.resolve(self.rev))
        return load_model(tree, env=self.env, render_secret=self.render_secret)
