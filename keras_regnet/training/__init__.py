"""Training with pycls's recipe in ``model.fit``.

``from keras_regnet.training import Recipe, train`` is the documented entry
point.  The pieces: ``recipe`` (hyper-parameters and pycls's schedule
formula), ``optimizer`` (the schedule and SGD as Keras objects, compile),
``distribute`` (tf.distribute / keras.distribution and every Keras
workaround), ``callbacks`` and ``loop`` (``train``).
"""

from keras_regnet.training.callbacks import TrainingDiverged
from keras_regnet.training.loop import train
from keras_regnet.training.optimizer import CoupledWeightDecaySGD, EpochCosineSchedule, compile_model, make_optimizer
from keras_regnet.training.recipe import Recipe, epoch_lr

__all__ = [
    "CoupledWeightDecaySGD",
    "EpochCosineSchedule",
    "Recipe",
    "TrainingDiverged",
    "compile_model",
    "epoch_lr",
    "make_optimizer",
    "train",
]
