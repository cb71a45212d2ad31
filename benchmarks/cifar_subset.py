"""A class-balanced CIFAR-10 subset, laid out for both trainers of the 100-epoch comparison.

From the shared CIFAR-10 training set (50,000 JPEGs, ``cifar10_train_jpeg.npz``)
it takes ``--train-per-class`` and ``--val-per-class`` disjoint images of each
class (a fixed seed picks them) and writes:

* ``OUT/train/<class>/<index>.jpg`` and ``OUT/val/<class>/<index>.jpg``: the
  original JPEG bytes, which ``keras-regnet train --data OUT`` reads;
* ``OUT/pycls/train.npz`` and ``test.npz``: the same images as the arrays
  ``pycls.datasets.cifar10.Cifar10`` holds (``data``: rows of 3,072 uint8 in
  CHW order, ``labels``), decoded with ``transforms_tf.decode_image``, the
  decoder keras_regnet's tf.data pipeline uses (the same pixels as Pillow and
  OpenCV), so both trainers see the same pixels.  (The runs of
  docs/results.md used TensorFlow's default JPEG decoder on both sides, before
  the package switched to the accurate one: the same pixels on both sides
  then too.)  (Not CIFAR's pickles: nothing here reads or writes pickle; the
  reference driver loads these arrays into pycls's dataset.)

The validation images are never trained on (they are other images of the
shared training set).  Idempotent: files already there are kept.

    python benchmarks/cifar_subset.py --out /tmp/cifar_subset
"""

from __future__ import annotations

import argparse
import io
import os

import numpy as np

from keras_regnet.atomic import write_bytes
from keras_regnet.safe_io import load_npz

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_train_jpeg.npz")


def pick(labels, per_class_train: int, per_class_val: int, seed: int):
    """Indices of the train and validation images: disjoint, class-balanced, seeded."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        train += list(members[:per_class_train])
        val += list(members[per_class_train: per_class_train + per_class_val])
    return np.sort(train), np.sort(val)


def write_jpegs(out, split, indices, data) -> None:
    for i in indices:
        folder = os.path.join(out, split, str(data["classes"][data["train_labels"][i]]))
        path = os.path.join(folder, f"{i:05d}.jpg")
        if not os.path.exists(path):
            os.makedirs(folder, exist_ok=True)
            o = data["train_offsets"]
            write_bytes(path, data["train_jpeg"][o[i]: o[i + 1]].tobytes())


def decoded_rows(indices, data) -> np.ndarray:
    """(n, 3072) uint8 CHW rows, decoded by TensorFlow as keras_regnet's pipeline does."""
    from keras_regnet.data.transforms_tf import decode_image

    o = data["train_offsets"]
    images = [decode_image(data["train_jpeg"][o[i]: o[i + 1]].tobytes()).numpy() for i in indices]
    return np.stack(images).transpose(0, 3, 1, 2).reshape(len(indices), -1)


def write_pycls(out, train, val, data) -> None:
    labels = data["train_labels"]
    for split, indices in (("train", train), ("test", val)):
        buffer = io.BytesIO()
        np.savez(buffer, data=decoded_rows(indices, data), labels=labels[indices].astype(np.int64))
        write_bytes(os.path.join(out, "pycls", f"{split}.npz"), buffer.getvalue())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=SHARED, help="the shared CIFAR-10 JPEG .npz")
    p.add_argument("--out", required=True)
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--val-per-class", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = load_npz(args.source, ["train_jpeg", "train_offsets", "train_labels", "classes"])
    train, val = pick(data["train_labels"], args.train_per_class, args.val_per_class, args.seed)
    write_jpegs(args.out, "train", train, data)
    write_jpegs(args.out, "val", val, data)
    write_pycls(args.out, train, val, data)
    print(f"{len(train)} training and {len(val)} validation images in {args.out} (JPEG folders and pycls/ arrays)")


if __name__ == "__main__":
    main()
