"""A ``Plan`` as text (a terminal), Markdown (a pull request comment) or JSON (a CI job).

Servers that get the same change of the same deployment are shown together,
with one diff: a group of a thousand identical web servers is one entry, not a
thousand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from setpoint.controller.rollout.plan import (
    EMPTY_TREE,
    KNOWN_AFTER_APPLY,
    RESUME,
    RETRY,
    RUN,
    SUSPEND,
    UNCHANGED,
    DeploymentChange,
    Plan,
    ServerChange,
)
from setpoint.controller.rollout.plan_members import JOINS
from setpoint.controller.wording import commits_named
from setpoint.store.digest import short

# GitHub refuses comments over 65536 characters; leave room for what CI adds.
MARKDOWN_LIMIT = 60_000


@dataclass
class _Group:
    change: ServerChange  # the first server's; every server in the group has the same
    servers: list[str]

    @property
    def who(self) -> str:
        if len(self.servers) <= 4:
            return ", ".join(self.servers)
        return f"{', '.join(self.servers[:3])} and {len(self.servers) - 3} more"


def _groups(dep: DeploymentChange) -> list[_Group]:
    found: dict[tuple[object, ...], _Group] = {}
    for s in dep.servers:
        key = (
            s.action,
            s.old,
            s.new,
            s.diff,
            s.known_after_apply,
            tuple(s.reads_changed),
            s.promoted_from,
            s.returning,
            s.state,
            s.run,
            s.retry,
            tuple(s.entries),
            s.after_joiners,
        )
        if key in found:
            found[key].servers.append(s.server)
        else:
            found[key] = _Group(s, [s.server])
    return list(found.values())


def _digest(digest: str | None, known_after_apply: bool) -> str:
    if digest is None:
        return f"({KNOWN_AFTER_APPLY})" if known_after_apply else "-"
    return short(digest, 16)


def _arrow(c: ServerChange) -> str:
    if c.action == "CREATE":
        return _digest(c.new, c.known_after_apply)
    if c.action == "DELETE":
        return _digest(c.old, False)
    if c.action in (UNCHANGED, SUSPEND, RESUME, RUN, RETRY):
        return _digest(c.new, c.known_after_apply)
    return f"{_digest(c.old, c.known_after_apply)} -> {_digest(c.new, c.known_after_apply)}"


def _notes(c: ServerChange) -> list[str]:
    notes = []
    if c.state:
        notes.append(f"state: {c.state[0]} -> {c.state[1]}")
    if c.run:
        notes.append(f"runs {c.run[0]} once (token {c.run[1]})")
    if c.retry:
        notes.append(f"retry {c.retry}: tries the failed config again")
    if c.after_joiners:
        joining = sorted({e.server for e in c.entries if e.change == JOINS})
        notes.append(f"re-runs once {', '.join(joining)} reported")
    for e in c.entries:
        value = e.value if e.value is not None else f"<{KNOWN_AFTER_APPLY}>"
        verb = "gains" if e.change == JOINS else "loses"
        notes.append(f"{e.input} {verb} {e.server}: {value} ({e.reads})")
    if c.reads_changed:
        notes.append(f"reads outputs of {', '.join(c.reads_changed)}, which changes")
    if c.promoted_from:
        env, commit = c.promoted_from
        notes.append(f"promoted: identical to {env} at commit {commit[:12]}")
    if c.returning:
        notes.append(f"returning: converged here at commit {c.returning[:12]}, already stored")
    return notes


def _batches(batches: list[list[str]]) -> str:
    return " then ".join("[" + ", ".join(b) + "]" for b in batches)


def _reorder_note(dep: DeploymentChange) -> str | None:
    if dep.reorders is None:
        return None
    return f"update batches: {_batches(dep.reorders[0])} -> {_batches(dep.reorders[1])}"


def _title(plan: Plan) -> str:
    env = f" (environment {plan.environment})" if plan.environment else ""
    return f"{plan.base[:12] or '(invalid)'}..{plan.head[:12]}{env}"


def _uploads(plan: Plan) -> str | None:
    if plan.uploads is None:
        return None
    if plan.uploads == 0:
        return "uploads: none (every blob is already in the store)"
    return f"uploads: {plan.uploads} blob{'s' if plan.uploads != 1 else ''}"


def _base_notes(plan: Plan, code: Callable[[str], str] = lambda sha: sha[:12]) -> list[str]:
    """What BASE is, when it is not simply a commit named: the empty tree, or what
    a store deployed and which servers have not converged on it yet; when the
    pointers name several commits, which (each server is planned from its own)."""
    deployed = plan.deployed
    if deployed is not None and deployed.commit is None:
        return ["nothing deployed yet: planned against the empty tree"]
    notes = ["first commit: planned against the empty tree"] if plan.base == EMPTY_TREE else []
    if deployed is not None and deployed.commit is not None:
        behind = ", ".join(f"{s} ({why})" for s, why in sorted(deployed.not_converged.items()))
        state = f"not converged on it yet: {behind}" if behind else "every server converged"
        notes.append(f"deployed: {deployed.commit[:12]} (the store's newest pointers); {state}")
        if len(deployed.commits) > 1:
            named = commits_named(deployed.commits, code)
            notes.append(f"{named}; each server is planned from its own pointer's commit")
    return notes


def format_text(plan: Plan, diffs: bool = True) -> str:
    out = [f"plan {_title(plan)}"]
    for problem in plan.base_problems[:1]:
        out.append(f"warning: the base has invalid definitions ({problem}); planned from nothing")
    out += _base_notes(plan)
    for dep in plan.deployments:
        if not dep.changes:
            continue
        out.append("")
        out.append(f"{dep.action:<9} {dep.name} (component {dep.component})")
        reorder = _reorder_note(dep)
        if reorder:
            out.append(f"  {reorder}")
        for group in _groups(dep):
            c = group.change
            label = f"{c.action} ({KNOWN_AFTER_APPLY})" if c.known_after_apply else c.action
            out.append(f"  {label:<9} {group.who}: {_arrow(c)}")
            out += [f"            {n}" for n in _notes(c)]
            if diffs and c.changes and c.diff:
                out += ["      " + line if line else "" for line in c.diff.splitlines()]
    unchanged = [d.name for d in plan.deployments if not d.changes]
    if unchanged and plan.has_changes:
        out += ["", f"unchanged: {', '.join(unchanged)}"]
    if plan.has_changes:
        out += ["", "rollout order:"]
        for i, dep in enumerate(plan.changed, 1):
            batches = _batches(dep.batches) or "no server changes"
            out.append(f"  {i}. {dep.name}: {batches}")
    uploads = _uploads(plan)
    if uploads:
        out.append(uploads)
    if plan.outputs:
        out += ["", "outputs:", *(o.line() for o in plan.outputs)]
    out += ["", plan.summary()]
    return "\n".join(out) + "\n"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    ticks = 3
    while "`" * ticks in text:
        ticks += 1
    return "`" * ticks


def _markdown_commit(note: str, plan: Plan) -> str:
    """A note with the deployed commit in code type, as the title shows commits."""
    commit = plan.deployed.commit if plan.deployed else None
    if not commit:
        return note
    return note.replace(
        f"deployed: {commit[:12]} (the store's newest pointers);", f"deployed: `{commit[:12]}`;"
    )


def _markdown_reorder_row(dep: DeploymentChange) -> list[str]:
    """The table row of a deployment whose update batches change (none if they don't)."""
    reorder = _reorder_note(dep)
    if reorder is None:
        return []
    if any(s.changes for s in dep.servers):  # its servers' rows follow
        return [f"| `{dep.name}` | | | | {reorder} |"]
    who = _Group(dep.servers[0], [s.server for s in dep.servers]).who
    return [f"| `{dep.name}` | {who} | {dep.action} | - | {reorder} |"]


def _markdown_outputs(plan: Plan) -> list[str]:
    """The stack outputs HEAD changes, as the text plan shows them (nothing when none)."""
    if not plan.outputs:
        return []
    lines = "\n".join(o.line() for o in plan.outputs)
    fence = _fence(lines)
    return ["Outputs:", "", f"{fence}text", lines, fence, ""]


def format_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """A pull request comment: summary, a table of changes, collapsible diffs (capped)."""
    head = [f"### setpoint plan `{_title(plan)}`", "", f"**{plan.summary()}**", ""]
    if plan.base_problems:
        head += ["> the base has invalid definitions; planned from nothing", ""]
    for note in _base_notes(plan, lambda sha: f"`{sha[:12]}`"):
        head += [f"> {_markdown_commit(note, plan)}", ""]
    table: list[str] = []
    details: list[str] = []
    if plan.has_changes:
        table += ["| deployment | servers | action | digest | notes |", "|---|---|---|---|---|"]
        for dep in plan.changed:
            table += _markdown_reorder_row(dep)
            for group in _groups(dep):
                c = group.change
                if not c.changes:
                    continue
                notes = "; ".join(_notes(c))
                action = f"{c.action} ({KNOWN_AFTER_APPLY})" if c.known_after_apply else c.action
                table.append(f"| `{dep.name}` | {group.who} | {action} | `{_arrow(c)}` | {notes} |")
                if c.diff:
                    fence = _fence(c.diff)
                    details.append(
                        f"<details><summary><code>{dep.name}</code> on {group.who}: "
                        f"{c.action}</summary>\n\n{fence}diff\n{c.diff}\n{fence}\n\n</details>"
                    )
        table.append("")
        order = ", ".join(f"`{d.name}`" for d in plan.changed)
        table += [f"Rollout order: {order}", ""]
        uploads = _uploads(plan)
        if uploads:
            table += [uploads, ""]
    text = "\n".join(head + table + _markdown_outputs(plan))
    kept = 0
    for block in details:
        # Keep room for the note that says what was cut.
        if len(text) + len(block) + 400 > limit:
            break
        text += block + "\n"
        kept += 1
    if kept < len(details):
        text += (
            f"\n_{len(details) - kept} of {len(details)} diffs left out to keep this comment "
            f"under {limit} characters; run `setpoint plan {plan.base[:12]} {plan.head[:12]}` "
            "for all of them._\n"
        )
    return text


def format_json(plan: Plan, extra: dict[str, Any] | None = None) -> str:
    """The plan as JSON, with ``extra`` keys beside its own (``preflight``)."""
    return json.dumps({**plan.to_dict(), **(extra or {})}, indent=2, sort_keys=True) + "\n"
