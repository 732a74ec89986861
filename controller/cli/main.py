"""``setpoint``: the controller's command line. The top parser, dispatch to the
command families (each module's parser sits next to its code), and the exit
codes that errors map to."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import version

from setpoint.controller import logs
from setpoint.controller.cli import (
    change,
    converge,
    definitions,
    demo,
    fleet,
    maintenance,
    serve,
)
from setpoint.controller.cli.common import FAILED, UNAVAILABLE, Parser, formatter, log_args
from setpoint.controller.converge.capabilities import CapabilityError
from setpoint.controller.converge.trust import UntrustedPointers
from setpoint.controller.definitions.repository import GitError
from setpoint.controller.errors import SetpointError
from setpoint.store.errors import StoreError

EPILOG = """\
exit codes:
  0   success (reconcile --wait: every server converged; fsck: the store is clean)
  1   a deployment failed (reconcile --wait); a rollout stopped: halted, rolled
      back, or halted by a failed preflight (reconcile --once); fsck found problems (or some are
      left after --repair); gc refused (the store is broken: run fsck)
  2   timed out before the fleet converged (reconcile --wait)
  3   invalid definitions: every problem is listed with file, line and field;
      nothing was published
  4   the repository or the store could not be used, or reconcile refused to
      replace signed pointers it cannot verify (nothing was published)
  5   another controller holds the store's lease (reconcile; see --lease-wait)
  6   reconcile --plan: the branch head or the store's pointers moved since
      'setpoint plan --out' made that plan (nothing was published)
  64  wrong usage

how it fits together:
  git commit -> setpoint validate/render (offline) -> setpoint reconcile publishes
  content-addressed configs to the store -> setpoint-agent on each server pulls,
  runs and reports -> setpoint status shows desired against reported.
  setpoint fsck checks the store (and repairs lost blobs from git); setpoint gc
  deletes blobs nothing needs any more.

Run 'setpoint COMMAND --help' for each command. 'setpoint demo' shows the whole
story on a throwaway repository and store.
"""

# In the order 'setpoint --help' lists their commands.
FAMILIES = (definitions, converge, fleet, maintenance, demo, change, serve)


def build_parser() -> Parser:
    parser = Parser(
        prog="setpoint",
        description="A gitops convergence controller for software configuration on servers.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"setpoint {version('setpoint')}")
    log_args(parser)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for family in FAMILIES:
        family.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = "warning" if args.command == "demo" and args.log_level == "info" else args.log_level
    logs.configure(level, args.log_format)
    try:
        code: int = args.handler(args)
    except (GitError, StoreError, CapabilityError, UntrustedPointers) as exc:
        print(f"setpoint: {exc}", file=sys.stderr)
        return UNAVAILABLE
    except SetpointError as exc:
        print(f"setpoint: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
