"""MLflow models that load and serve with this package's optimizers, in any fresh process.

MLflow's ``keras`` flavor reloads a model with ``keras.saving.load_model(path)`` and no
``custom_objects``; a model compiled with, say, `keras_adam_variants.AMSGrad` then fails with
``Could not locate class 'AMSGrad'`` unless something imported this package first. A model logged
with `log_model` here is an ordinary ``keras``-flavor MLflow model (same files, same ``keras``
entry in ``MLmodel``) whose ``python_function`` flavor names this module as its ``loader_module``,
MLflow's documented custom-flavor mechanism: `mlflow.pyfunc.load_model` and ``mlflow models
predict/serve`` import this module, which imports the package (registering every optimizer with
Keras) and hands over to ``mlflow.keras``'s own loader. The model's ``requirements.txt`` lists
``keras-adam-variants`` with Keras, the backend and MLflow.

Usage::

    from keras_adam_variants import mlflow_models

    with mlflow.start_run():
        info = mlflow_models.log_model(model, name="model", signature=signature)
    mlflow.pyfunc.load_model(info.model_uri).predict(x)            # no import of the package needed
    mlflow.keras.load_model(info.model_uri, custom_objects=kav.custom_objects())  # still works

This module imports MLflow; the rest of the package does not need it.
"""

import contextlib
import os
from importlib import metadata

import mlflow
import mlflow.keras
from mlflow.models import Model
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.pyfunc import FLAVOR_NAME as PYFUNC_FLAVOR_NAME

LOADER_MODULE = __name__  # "keras_adam_variants.mlflow_models"

# Distributions a served model needs, besides MLflow itself; the backend's is added by
# `pip_requirements` (the one Keras runs on when the model is logged).
_BACKEND_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}


def pip_requirements():
    """The pinned pip requirements of a logged model: this package, Keras, the backend, MLflow.

    Returns a list of strings like ``"keras-adam-variants==0.1.0"``. Only installed
    distributions are listed (``tensorflow`` or ``tensorflow-cpu``, whichever is installed).
    Given explicitly because MLflow's inference reloads the model in a subprocess (seconds) and
    misses this package.
    """
    import keras

    names = ["keras-adam-variants", "keras", *_BACKEND_DISTRIBUTIONS.get(keras.backend.backend(), ())]
    names += ["numpy", "mlflow"]
    requirements = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            requirements.append(f"{name}=={metadata.version(name)}")
    if not any(r.startswith("keras-adam-variants==") for r in requirements):
        # Imported from a checkout that is not installed: name the package at its own version.
        from keras_adam_variants import __version__

        requirements.insert(0, f"keras-adam-variants=={__version__}")
    return requirements


def save_model(model, path, mlflow_model=None, pip_requirements=None, **kwargs):
    """`mlflow.keras.save_model`, with this module as the ``python_function`` loader.

    Args:
        model: a `keras.Model` (compiled with any optimizer).
        path: the local directory to write the MLflow model to (must not exist).
        mlflow_model: the `mlflow.models.Model` to add the flavors to (MLflow's ``Model.log``
            passes one). Defaults to a new one.
        pip_requirements: requirements to write; defaults to `pip_requirements()`.
        **kwargs: the other arguments of `mlflow.keras.save_model` (signature, metadata, ...).
    """
    if mlflow_model is None:
        mlflow_model = Model()
    if pip_requirements is None and kwargs.get("conda_env") is None:
        pip_requirements = globals()["pip_requirements"]()
    mlflow.keras.save_model(
        model, path, mlflow_model=mlflow_model, pip_requirements=pip_requirements, **kwargs
    )
    # mlflow.keras wrote MLmodel with loader_module "mlflow.keras": point it here, so loading
    # imports this package first. The "keras" flavor entry is left exactly as MLflow wrote it.
    mlflow_model.flavors[PYFUNC_FLAVOR_NAME]["loader_module"] = LOADER_MODULE
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


def log_model(model, name="model", signature=None, **kwargs):
    """Log ``model`` to MLflow as a Keras model that loads and serves in a fresh process.

    The same shape as `mlflow.keras.log_model` (``name``, ``signature`` and its other keyword
    arguments: ``pip_requirements``, ``registered_model_name``, ``metadata``, ``params``,
    ``tags``, ``step``, ``model_id``, ...), logged to the active run, or to ``run_id=`` (a run
    of the current tracking URI) when given. ``input_example`` is not
    recommended: MLflow 3.17 fails to read it back for Keras models; pass a ``signature`` made
    with `mlflow.models.infer_signature(x, model.predict(x))`.

    Returns:
        The `mlflow.models.model.ModelInfo` of the logged model (``info.model_uri``).
    """
    import keras_adam_variants.mlflow_models as flavor

    return Model.log(
        artifact_path=None, name=name, flavor=flavor, flavor_name=mlflow.keras.FLAVOR_NAME, model=model,
        signature=signature, **kwargs,
    )


def _load_pyfunc(path):
    """MLflow's ``loader_module`` hook: import this package, then load as ``mlflow.keras`` does.

    Importing `keras_adam_variants` registers every optimizer class with Keras, so
    ``keras.saving.load_model`` finds ``keras_adam_variants>AMSGrad`` without custom objects.
    """
    import keras_adam_variants  # noqa: F401  (registers the optimizers)
    from mlflow.keras.load import _load_pyfunc as load_keras_pyfunc

    wrapper = load_keras_pyfunc(path)
    wrapper.__class__ = _QuietKerasModelWrapper
    return wrapper


def _quiet_wrapper_class():
    from mlflow.keras.load import KerasModelWrapper

    class QuietKerasModelWrapper(KerasModelWrapper):
        """MLflow's Keras pyfunc wrapper, predicting with ``verbose=0``: Keras' progress bar
        would otherwise go to stdout ahead of ``mlflow models predict``'s JSON."""

        def get_model_call_method(self):
            if self.save_exported_model:
                return self.model.serve
            return lambda data: self.model.predict(data, verbose=0)

    return QuietKerasModelWrapper


_QuietKerasModelWrapper = _quiet_wrapper_class()
