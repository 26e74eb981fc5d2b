"""Deliver what runs could not deliver to the tracking store (left-over spools).

    python -m experiments.sync                       # every spool under ./mlruns/spool
    python -m experiments.sync CHECKPOINT_DIR ...    # spools in (or under) these directories
    python -m experiments.sync --tracking-uri http://host:5000   # deliver there instead

A run writes everything it logs to a spool on local disk first (see
:mod:`experiments.tracking.writer`); when the tracking server was down at the end of training, or
the process was killed, what the store has not taken stays there. This command sends it, in
order and exactly once, prints one line per run, and removes the spool of a run whose end is
stored. With no directory it looks under ``./mlruns/spool`` and, for a SQLite
``--tracking-uri``/``MLFLOW_TRACKING_URI``, under ``<dir of the .db>/spool`` (these roots also
hold pointers to spools kept in checkpoint directories).

Exit status: 0 when everything found was delivered (or there was nothing), 3 when some operations
remain because the store is unreachable or a spool is in use by a running process (run it again
later), 2 on bad arguments (a directory that does not exist).
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import ArgumentParser, UserError, add_debug_flag, cli_errors

EXIT_REMAINING = 3


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m experiments.sync",
        description="Deliver left-over tracking spools to the MLflow store.",
        epilog="Exit status: 0 all delivered, 3 some remain (store unreachable or spool in use), "
               "2 bad arguments.")
    parser.add_argument("dirs", nargs="*", metavar="DIR",
                        help="a spool, or a directory holding spools (default: ./mlruns/spool "
                             "and the spool root of the tracking store)")
    parser.add_argument("--tracking-uri", default=None,
                        help="deliver to this store instead of the one each spool was written for")
    add_debug_flag(parser)
    return parser


def default_roots(tracking_uri: str | None) -> list[str]:
    from .tracking.store import resolve_uri
    from .tracking.writer import default_spool_root

    roots = [os.path.join(os.path.abspath(os.getcwd()), "mlruns", "spool"),
             default_spool_root(resolve_uri(tracking_uri))]
    return [r for r in dict.fromkeys(roots) if os.path.isdir(r)]


@cli_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for d in args.dirs:
        if not os.path.isdir(d):
            raise UserError(f"{d} is not a directory: pass a spool directory (one holding "
                            "spool.json) or a directory above spools")
    from .tracking.syncing import find_spools, sync_spool

    roots = args.dirs or default_roots(args.tracking_uri)
    spools = list(dict.fromkeys(s for root in roots for s in find_spools(root)))
    if not spools:
        print(f"nothing to deliver (no spool under {', '.join(roots) or './mlruns/spool'})")
        return 0
    remaining = 0
    for spool_dir in spools:
        result = sync_spool(spool_dir, args.tracking_uri)
        print(result.line(), flush=True)
        remaining += result.remaining
    return EXIT_REMAINING if remaining else 0

if __name__ == "__main__":
    sys.exit(main())
