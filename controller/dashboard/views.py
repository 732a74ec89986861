"""The dashboard's pages: each reads through the shared snapshot (or the
repository) with the functions the command line uses, and renders a template.

Every page is whole HTML that works without JavaScript; ``static/live.js``
fetches the same URL again and swaps the page's ``<main>`` in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from setpoint.controller.converge.runs import Run, server_runs
from setpoint.controller.converge.status import ServerStatus
from setpoint.controller.dashboard.deployment import deployment_view
from setpoint.controller.dashboard.overview import STATES, TROUBLE, overview
from setpoint.controller.dashboard.paging import page_number, paginate
from setpoint.controller.dashboard.repository import desired_commit, history_rows, pending_plan

if TYPE_CHECKING:
    from setpoint.controller.dashboard.app import Dashboard

# ``/servers?state=``: one state, "trouble" (failed, quarantined, unreachable), or all.
TROUBLE_FILTER = "trouble"


def _dashboard(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def _render(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    dashboard = _dashboard(request)
    snapshots = dashboard.snapshots
    html = dashboard.templates.get_template(template).render(
        request=request,
        # Paths, not absolute URLs: links stay right behind a proxy that renames the host.
        url_for=lambda name, **params: str(request.app.url_path_for(name, **params)),
        live_every=dashboard.live_every,
        has_repo=dashboard.repo is not None,
        # How old the fleet shown is, and why the reads since failed if they did.
        fleet=snapshots.freshness(),
        fleet_now=snapshots.clock(),
        refresh=snapshots.refresh,
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def _not_found(request: Request, what: str) -> HTMLResponse:
    return _render(request, "not_found.html", status_code=404, what=what)


async def fleet_unreadable(request: Request, exc: Exception) -> HTMLResponse:
    """No read of the fleet ever succeeded: say why (503), until one does."""
    return _render(request, "unreadable.html", status_code=503, error=str(exc))


async def overview_page(request: Request) -> HTMLResponse:
    dashboard = _dashboard(request)
    snapshot = await run_in_threadpool(dashboard.snapshots.get)
    desired = await run_in_threadpool(desired_commit, dashboard)
    # Off the event loop: the first request after a read walks every pair.
    view = await run_in_threadpool(overview, snapshot)
    trouble = view.servers_in(TROUBLE)
    return _render(
        request,
        "overview.html",
        view=view,
        states=STATES,
        desired=desired,
        trouble=trouble[:20],
        trouble_total=len(trouble),
        read_at=snapshot.read_at,
    )


async def servers_page(request: Request) -> HTMLResponse:
    snapshot = await run_in_threadpool(_dashboard(request).snapshots.get)
    state = request.query_params.get("state") or None
    wanted: frozenset[str] | None = None
    if state == TROUBLE_FILTER:
        wanted = TROUBLE
    elif state is not None:
        wanted = frozenset({state})
    view = await run_in_threadpool(overview, snapshot)
    page = paginate(view.servers_in(wanted), page_number(request.query_params.get("page")))
    rows = [(snapshot.by_server[name], state_of) for name, state_of in page.items]
    return _render(
        request,
        "servers.html",
        page=page,
        rows=rows,
        state=state,
        states=(*STATES, TROUBLE_FILTER),
    )


async def server_page(request: Request) -> HTMLResponse:
    dashboard = _dashboard(request)
    name = request.path_params["server"]
    snapshot = await run_in_threadpool(dashboard.snapshots.get)
    status = snapshot.by_server.get(name)
    if status is None:
        return _not_found(request, f"server {name!r}")
    runs = await run_in_threadpool(_runs, dashboard.store, status)
    return _render(request, "server.html", status=status, runs=runs, now=snapshot.read_at)


async def deployment_page(request: Request) -> HTMLResponse:
    dashboard = _dashboard(request)
    name = request.path_params["deployment"]
    snapshot = await run_in_threadpool(dashboard.snapshots.get)
    view = await run_in_threadpool(
        deployment_view,
        dashboard,
        snapshot,
        name,
        request.query_params.get("digest"),
    )
    if view is None:
        return _not_found(request, f"deployment {name!r}")
    page = paginate(view.servers, page_number(request.query_params.get("page")))
    return _render(request, "deployment.html", view=view, page=page)


async def history_page(request: Request) -> HTMLResponse:
    dashboard = _dashboard(request)
    number = page_number(request.query_params.get("page"))
    rows = await run_in_threadpool(history_rows, dashboard, number)
    return _render(request, "history.html", history=rows)


async def pending_page(request: Request) -> HTMLResponse:
    dashboard = _dashboard(request)
    branch = request.query_params.get("branch") or dashboard.branch
    snapshot = await run_in_threadpool(dashboard.snapshots.get)
    pending = await run_in_threadpool(pending_plan, dashboard, snapshot.deployed, branch)
    return _render(request, "pending.html", pending=pending, branch=branch)


def _runs(store: Any, status: ServerStatus) -> list[Run]:
    """The server's last runs, masked, newest first (none without a report)."""
    return server_runs(store, status.report) if status.report is not None else []
