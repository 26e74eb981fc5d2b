"""Objects the study tests send to worker processes (importable there as ``tests._study_helpers``)."""

import keras


class FailingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule that raises when training asks it for a rate: a child run that
    fails for real, inside ``model.fit``, after its MLflow run has started."""

    def __call__(self, step):
        raise RuntimeError("injected failure: FailingSchedule was asked for a learning rate")

    def get_config(self):
        return {}

    def __repr__(self):
        return "FailingSchedule()"
