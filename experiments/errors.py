"""One line per failure, for every command-line entry point.

A bad input or a bad environment ends a command with a single ``error: <what, where, what to do>``
line on stderr and exit status 2, without a traceback (``--debug`` shows it). Wrap ``main``::

    from experiments.errors import ArgumentParser, add_debug_flag, cli_errors

    @cli_errors
    def main(argv=None) -> int:
        parser = ArgumentParser(prog="python -m experiments.x")
        add_debug_flag(parser)
        args = parser.parse_args(argv)
        ...

What counts as the user's error (exit 2): :class:`UserError` and its subclasses (``ConfigError``,
``DatasetNotPreparedError``), ``experiments.tracking.TrackingUnavailableError``, and ``OSError``
(a path that cannot be read or written; the message names it). Anything else is a bug: one line
saying so, exit 1, the traceback with ``--debug``. Interrupted (Ctrl-C): exit 130.

This module imports nothing heavy, so argument errors stay fast.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER = 2
EXIT_INTERRUPTED = 130
DEBUG_ENV = "KAV_DEBUG"  # set to 1: tracebacks, as with --debug


class UserError(Exception):
    """Bad input or environment that the user can fix: reported as one ``error:`` line, exit 2."""


def one_line(text: object) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed)."""
    return " ".join(str(text).split())


def error(message: object) -> None:
    """Print ``error: <message>`` (one line) on stderr."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one ``error:`` line (exit 2), not usage + error."""

    def error(self, message):  # noqa: D102 (argparse's signature)
        error(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_USER)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug``: show the traceback of a failure instead of only its ``error:`` line."""
    parser.add_argument("--debug", action="store_true",
                        help="on failure, show the Python traceback as well as the error line "
                             f"(or set {DEBUG_ENV}=1)")


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exception types reported as the user's error (exit 2)."""
    kinds: list[type[BaseException]] = [UserError, OSError]
    for module, name in ((f"{__package__}.tracking", "TrackingUnavailableError"),
                         (f"{__package__}.datasets", "DatasetNotPreparedError")):
        loaded = sys.modules.get(module)  # not imported: it cannot have raised
        cls = getattr(loaded, name, None) if loaded is not None else None
        if isinstance(cls, type):
            kinds.append(cls)
    return tuple(kinds)


def _describe_os_error(err: OSError) -> str:
    where = " -> ".join(str(p) for p in (err.filename, err.filename2) if p)
    what = err.strerror or str(err)
    return (f"{what}: {where}. Check that the path exists and is writable, or choose another "
            f"one" if where else f"{what}")


def report(err: BaseException, debug: bool = False) -> int:
    """Print ``err`` as one ``error:`` line (its traceback first if ``debug``); return the exit status."""
    if debug:
        traceback.print_exception(err)
    if isinstance(err, KeyboardInterrupt):
        error("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(err, expected_errors()):
        error(_describe_os_error(err) if type(err).__module__ == "builtins" and
              isinstance(err, OSError) else err)
        return EXIT_USER
    error(f"unexpected {type(err).__name__}: {err} -- this is a bug; rerun with --debug and report "
          "the traceback")
    return EXIT_BUG


def cli_errors(main):
    """Decorate ``main(argv=None) -> int`` so that every failure is one line (see the module doc).

    ``--debug`` anywhere in ``argv`` (or ``KAV_DEBUG=1``) also prints the traceback.
    """

    @functools.wraps(main)
    def wrapper(argv=None, *args, **kwargs):
        words = sys.argv[1:] if argv is None else list(map(str, argv))
        debug = "--debug" in words or os.environ.get(DEBUG_ENV, "") not in ("", "0")
        try:
            return main(argv, *args, **kwargs)
        except SystemExit:
            raise
        except BaseException as err:  # noqa: BLE001 (the point of this wrapper)
            return report(err, debug)

    return wrapper
