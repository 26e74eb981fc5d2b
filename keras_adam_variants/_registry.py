"""Registration of the package's optimizers: Keras serialization and lookup by name."""

import keras

PACKAGE = "keras_adam_variants"

# Lower-cased class name -> class, filled by ``register`` as each optimizer module is imported.
_OPTIMIZERS = {}


def _normalize(name):
    return name.lower().replace("_", "").replace("-", "")


def register(cls):
    """Register ``cls`` with Keras (as ``keras_adam_variants>ClassName``) and with ``get``."""
    cls = keras.saving.register_keras_serializable(package=PACKAGE)(cls)
    _OPTIMIZERS[_normalize(cls.__name__)] = cls
    return cls


def names():
    """The names ``get`` accepts, one per optimizer class, sorted."""
    return sorted(cls.__name__ for cls in _OPTIMIZERS.values())


def get(identifier):
    """Return the optimizer class for ``identifier``.

    ``identifier`` is a name, case-insensitive and ignoring ``_`` and ``-`` (``"amsgrad"``,
    ``"AMSGrad"``), or one of this package's optimizer classes (returned as is).
    """
    if isinstance(identifier, type) and identifier in _OPTIMIZERS.values():
        return identifier
    if isinstance(identifier, str):
        cls = _OPTIMIZERS.get(_normalize(identifier))
        if cls is not None:
            return cls
    raise ValueError(
        f"Unknown optimizer {identifier!r}: expected one of {', '.join(names())} "
        "(case-insensitive) or one of their classes."
    )


def custom_objects():
    """The ``custom_objects`` dict for ``keras.models.load_model``.

    Holds each class under its registered name (``keras_adam_variants>Adam``) and its plain
    class name, so that a model saved with any of this package's optimizers reloads.
    """
    objects = {}
    for cls in _OPTIMIZERS.values():
        objects[keras.saving.get_registered_name(cls)] = cls
        objects[cls.__name__] = cls
    return objects
