"""Custom Keras layers that shipped models contain.

They live in ``core`` (not ``training``) because the app must be able to load
every model the training side can save; importing this module registers them
with Keras' serialisation.
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="facesense")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left-right (NHWC), deterministically.

    Used for test-time augmentation: a model that averages its predictions on a
    face and on the mirrored face is measurably more accurate (see the model cards),
    and the live app runs exactly the same averaged model.
    """

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape
