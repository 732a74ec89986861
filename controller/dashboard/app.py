"""The dashboard's Starlette application: its routes, templates and access rules.

``create_app`` builds it from what ``setpoint serve`` was given; the views
(``dashboard.views``) read through a ``Dashboard``, which holds the store, the
shared snapshot and the optional definitions repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from setpoint.controller.dashboard import views
from setpoint.controller.dashboard.access import TokenRequired
from setpoint.controller.dashboard.filters import FILTERS
from setpoint.controller.dashboard.refresher import FleetUnreadable, SnapshotRefresher
from setpoint.controller.dashboard.snapshot import Snapshot
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.store.base import Store

HERE = Path(__file__).parent

# Where Prometheus metrics mount: ``create_app(metrics=...)`` takes a function of
# the snapshot every page reads (so that a scrape costs the store nothing more)
# that returns the body and its content type, so that the content type always
# matches the format the body was made in.
METRICS_PATH = "/metrics"
MetricsSource = Callable[[Snapshot], tuple[bytes, str]]


@dataclass
class Dashboard:
    """What the views read: the store (through one shared snapshot) and, when
    given, the definitions repository for history and pending changes."""

    store: Store
    snapshots: SnapshotRefresher
    templates: Environment
    repo: str | None = None
    branch: str = "HEAD"
    env: str | None = None
    # The secret Heat RandomString values derive from (the pending change's plan).
    render_secret: bytes | None = None
    # Seconds between live updates of a page (where JavaScript is on).
    live_every: float = 5.0


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def create_app(
    store: Store,
    *,
    repo: str | None = None,
    branch: str = "HEAD",
    env: str | None = None,
    render_secret: bytes | None = None,
    token: str | None = None,
    refresh: float = 2.0,
    live_every: float = 5.0,
    unreachable_after: float = UNREACHABLE_AFTER_BEATS,
    metrics: MetricsSource | None = None,
) -> Starlette:
    """The dashboard over ``store`` (read only); every request needs ``token`` when given."""
    dashboard = Dashboard(
        store=store,
        snapshots=SnapshotRefresher(store, refresh=refresh, unreachable_after=unreachable_after),
        templates=templates(),
        repo=repo,
        branch=branch,
        env=env,
        render_secret=render_secret,
        live_every=live_every,
    )
    routes: list[Route | Mount] = [
        Route("/", views.overview_page, name="overview"),
        Route("/servers", views.servers_page, name="servers"),
        Route("/servers/{server}", views.server_page, name="server"),
        Route("/deployments/{deployment:path}", views.deployment_page, name="deployment"),
        Route("/history", views.history_page, name="history"),
        Route("/pending", views.pending_page, name="pending"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if metrics is not None:
        route = _metrics_route(metrics, dashboard.snapshots)
        routes.append(Route(METRICS_PATH, route, name="metrics"))
    middleware = [Middleware(TokenRequired, token=token)] if token else []

    @asynccontextmanager
    async def serving(_app: Starlette) -> AsyncIterator[None]:
        # The fleet is read in the background from the start, and no more once
        # the server stops.
        dashboard.snapshots.start()
        try:
            yield
        finally:
            await run_in_threadpool(dashboard.snapshots.stop)

    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=serving,
        exception_handlers={FleetUnreadable: views.fleet_unreadable},
    )
    app.state.dashboard = dashboard
    return app


def _metrics_route(
    metrics: MetricsSource, snapshots: SnapshotRefresher
) -> Callable[[Request], Response]:
    def route(_request: Request) -> Response:  # a plain function: Starlette runs it off the loop
        body, content_type = metrics(snapshots.get())
        return Response(body, media_type=content_type)

    return route
