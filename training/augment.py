"""CPU image augmentation in a ``keras.utils.PyDataset``.

OpenCV affine warps on uint8 faces cost microseconds each, while Keras' random
image layers run inside the training graph and slow every step (measured 70x on a
GPU); doing it here keeps the network graph identical for training and inference.
"""
from __future__ import annotations

import math

import cv2
import keras
import numpy as np


class FaceBatches(keras.utils.PyDataset):
    """Shuffled (optionally augmented) batches of uint8 faces and their labels."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool, seed: int = 0,
                 shift: float = 0.08, rotate: float = 10.0, zoom: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
        self.shift, self.rotate, self.zoom = shift, rotate, zoom
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.x[idx]
        if self.augment:
            rng = np.random.default_rng(self.rng.integers(1 << 31) + index)
            x = np.stack([self._augment(img, rng) for img in x])
        return x, self.y[idx]

    def _augment(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = img.shape[0]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        angle = rng.uniform(-self.rotate, self.rotate)
        scale = 1.0 + rng.uniform(-self.zoom, self.zoom)
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
        matrix[:, 2] += rng.uniform(-self.shift, self.shift, size=2) * size
        out = cv2.warpAffine(np.ascontiguousarray(img), matrix, (size, size), borderMode=cv2.BORDER_REFLECT_101)
        gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        out = cv2.convertScaleAbs(out, alpha=gain, beta=bias)
        return out.reshape(img.shape)
