"""scikit-learn's 1,797 8x8 digits (shipped in its wheel, so always offline): one
channel, ten classes, a fixed 80/20 split."""

from __future__ import annotations

import numpy as np
import torch

from genolang.data.images import Augment, ImageData, ImageRecord, finish

CLASSES = tuple(str(i) for i in range(10))


def load(data_dir: str | None, download: bool, like: ImageRecord | None = None) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = len(labels) // 5
    test, train = order[:n_test], order[n_test:]
    return finish("digits", images[train], labels[train], images[test], labels[test],
                  Augment(crop_padding=1, flip=False, cutout=0), class_names=CLASSES)
