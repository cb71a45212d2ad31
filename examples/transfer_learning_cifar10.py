"""Transfer learning with a pretrained RegNet: frozen backbone, then full fine-tune.

    python examples/transfer_learning_cifar10.py \
        --model RegNetY-800MF --weights imagenet \
        --data ../shared/data/cifar10_train_jpeg.npz --size 128

``--data embedded`` uses the 5,000-image CIFAR-10 subset inside the package.
``--weights`` takes ``imagenet``, a weights file, or ``none``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_regnet  # noqa: E402
from keras_regnet.data.cifar10 import load_cifar10_jpeg_npz, load_embedded_cifar10  # noqa: E402


def load_data(data, train_images, val_images):
    if data == "embedded":
        (xt, yt, classes), (xv, yv, _) = load_embedded_cifar10("train"), load_embedded_cifar10("validation")
        return xt[:train_images], yt[:train_images], xv[:val_images], yv[:val_images], classes
    xt, yt, classes = load_cifar10_jpeg_npz(data, "train", limit=train_images)
    xv, yv, _ = load_cifar10_jpeg_npz(data, "validation", limit=val_images)
    return xt, yt, xv, yv, classes


def build(model_name, weights, size, num_classes):
    """CIFAR images (32x32 RGB, 0-255) -> resize -> RegNet backbone -> new head."""
    backbone = keras_regnet.get_model(
        model_name, include_top=False, pooling="avg", weights=weights, input_shape=(size, size, 3)
    )
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.Resizing(size, size)(x)
    # training=False keeps BatchNorm in inference mode even when the backbone
    # is unfrozen: the usual Keras fine-tuning practice for small datasets.
    x = backbone(x, training=False)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="cifar_head")(x)
    return keras.Model(inputs, outputs), backbone


def run(args):
    keras.utils.set_random_seed(args.seed)
    xt, yt, xv, yv, classes = load_data(args.data, args.train_images, args.val_images)
    weights = None if args.weights == "none" else args.weights
    model, backbone = build(args.model, weights, args.size, len(classes))
    results = {"train_images": len(xt), "val_images": len(xv)}

    # Phase 1: train only the new head on frozen features.
    backbone.trainable = False
    model.compile(keras.optimizers.Adam(args.head_lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xt, yt, batch_size=args.batch, epochs=args.head_epochs, validation_data=(xv, yv), verbose=args.verbose)
    results["head_only_val_accuracy"] = float(model.evaluate(xv, yv, verbose=0)[1])

    # Phase 2: unfreeze everything, fine-tune with a small learning rate.
    backbone.trainable = True
    model.compile(
        keras.optimizers.SGD(args.finetune_lr, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(xt, yt, batch_size=args.batch, epochs=args.finetune_epochs, validation_data=(xv, yv), verbose=args.verbose)
    results["finetuned_val_accuracy"] = float(model.evaluate(xv, yv, verbose=0)[1])
    return model, backbone, results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="RegNetY-800MF")
    p.add_argument("--weights", default="imagenet", help="imagenet, a weights file, or none")
    p.add_argument("--data", default="embedded", help="'embedded' or a CIFAR-10 JPEG npz")
    p.add_argument("--size", type=int, default=128, help="resize CIFAR images to this (>= 32)")
    p.add_argument("--train-images", type=int, default=None)
    p.add_argument("--val-images", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--head-epochs", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--json", help="write the accuracies here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    _, _, results = run(args)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
