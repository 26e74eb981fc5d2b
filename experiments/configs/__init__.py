"""The built-in study configs (TOML files shipped in the wheel), by name.

``kav sweep --config digits_quick`` names a built-in config; a path to a TOML file works too.
:func:`resolve_config` turns either into a file path; :func:`names` lists the built-in ones.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources

SUFFIX = ".toml"


class ConfigNotFoundError(ValueError):
    """Neither a built-in config name nor an existing file."""


def _directory() -> str:
    # The configs are plain files next to this module, in a checkout and in an installed wheel
    # (zip imports are not supported: the sweep reads the file by path).
    return os.fspath(resources.files(__name__))


def names() -> list[str]:
    """Names of the built-in configs (file names without ``.toml``), sorted."""
    return sorted(f[: -len(SUFFIX)] for f in os.listdir(_directory()) if f.endswith(SUFFIX))


def resolve_config(name_or_path: str) -> str:
    """The path of the config ``name_or_path``: an existing file as given, else the built-in
    config of that name (``digits_quick`` or ``digits_quick.toml``).

    Raises :class:`ConfigNotFoundError` (a ``ValueError``) naming the built-in configs and the
    closest one when it is neither.
    """
    if os.path.isfile(name_or_path):
        return name_or_path
    parent, stem = os.path.split(name_or_path)
    if stem.endswith(SUFFIX):
        stem = stem[: -len(SUFFIX)]
    builtin = names()
    # A bare name selects a built-in config; so does the checkout's path of one
    # (`experiments/configs/digits_quick.toml`, as the README wrote it) run from another directory.
    if stem in builtin and (not parent or os.path.basename(parent) == "configs"):
        return os.path.join(_directory(), stem + SUFFIX)
    close = difflib.get_close_matches(stem, builtin, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigNotFoundError(
        f"no config file {name_or_path!r} and no built-in config of that name{hint} "
        f"(built-in: {', '.join(builtin)}; or pass the path of a TOML file)")
