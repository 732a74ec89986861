"""``setpoint serve``: a read-only web dashboard over a store (and, optionally,
the definitions repository for history and pending changes).

It reads what ``setpoint status``, ``logs``, ``plan`` and ``history`` read,
through the same functions, and writes nothing anywhere. The app is a Starlette
application whose pages are Jinja2 templates; they work without JavaScript, and
``static/live.js`` refreshes them in place where JavaScript is on.
"""
