"""A module imported on first use, so that modules which only *may* need TensorFlow or Keras
(the dataset and workload registries) can be imported by a command line in milliseconds."""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for the module ``name``; the first attribute access imports it.

    ``tf = LazyModule("tensorflow")`` at module level, then ``tf.data.Dataset`` inside functions
    as usual. The real module is imported by :func:`importlib.import_module`, so
    ``sys.modules`` only ever holds the real module.
    """

    def __init__(self, name: str):
        self._lazy_name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._lazy_name), attr)

    def __repr__(self) -> str:
        return f"<LazyModule {self._lazy_name}>"
