"""keras-adam-variants: faithful, XLA-compatible Keras 3 optimizers from the Adam family.

Usage::

    import keras_adam_variants as kav
    model.compile(optimizer=kav.AMSGrad(learning_rate=1e-3), loss=...)
    keras.models.load_model(path, custom_objects=kav.custom_objects())
"""

from keras_adam_variants._registry import custom_objects, get, names
from keras_adam_variants import callbacks
from keras_adam_variants.adabelief import AdaBelief
from keras_adam_variants.adadelta import Adadelta
from keras_adam_variants.adagrad import Adagrad
from keras_adam_variants.adam import Adam
from keras_adam_variants.adamax import Adamax
from keras_adam_variants.adamw import AdamW
from keras_adam_variants.amsgrad import AMSGrad
from keras_adam_variants.lazy_adam import LazyAdam
from keras_adam_variants.nadam import Nadam
from keras_adam_variants.radam import RAdam
from keras_adam_variants.rmsprop import RMSprop
from keras_adam_variants.sgd import SGD
from keras_adam_variants.yogi import Yogi

__version__ = "0.1.0"


def __getattr__(name):
    # `kav.mlflow_models` on first use: it imports MLflow, which the optimizers do not need.
    if name == "mlflow_models":
        import importlib

        return importlib.import_module("keras_adam_variants.mlflow_models")
    raise AttributeError(f"module 'keras_adam_variants' has no attribute {name!r}")

__all__ = [
    "AMSGrad",
    "AdaBelief",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "LazyAdam",
    "Nadam",
    "RAdam",
    "RMSprop",
    "SGD",
    "Yogi",
    "callbacks",
    "custom_objects",
    "get",
    "names",
]
