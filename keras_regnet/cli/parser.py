"""The ``keras-regnet`` argument parser: one small function per subcommand.

Nothing here imports Keras or TensorFlow, so ``keras-regnet --help`` and a
mistyped argument answer at once; the commands import what they need.
"""

from __future__ import annotations

import argparse
import os

from keras_regnet.cli.space import add_space

DESCRIPTION = "Inspect, train, evaluate and export the RegNet models (pycls's, for Keras 3)."
FLAGS = (
    ("--debug", "show the Python traceback of an error"),
    ("--verbose", "show TensorFlow's native start-up log lines (hidden by default)"),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``keras-regnet`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="keras-regnet", description=DESCRIPTION)
    for flag, text in FLAGS:
        parser.add_argument(flag, action="store_true", help=text)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_zoo, add_complexity, add_summary, add_plot, add_convert, add_train, add_evaluate, add_export, add_space):
        add(sub)
    for subparser in sub.choices.values():  # the flags also after the subcommand
        for flag, text in FLAGS:
            subparser.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
    return parser


def add_zoo(sub) -> None:
    p = sub.add_parser("zoo", help="check the 24 published models against pycls's table")
    p.add_argument("--build", action="store_true", help="also build each Keras model and count its parameters")
    p.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")


def add_config_args(p) -> None:
    """A published model name, or the generator parameters of a custom configuration."""
    p.add_argument("name", nargs="?", help="published model name, e.g. RegNetY-800MF")
    p.add_argument("--depth", type=int, help="custom config: depth d")
    p.add_argument("--w0", type=int, help="custom config: initial width (multiple of 8)")
    p.add_argument("--wa", type=float, help="custom config: width slope")
    p.add_argument("--wm", type=float, help="custom config: width multiplier (> 1)")
    p.add_argument("--group-width", type=int, help="custom config: group width")
    p.add_argument("--bottleneck-ratio", type=float, default=1.0)
    p.add_argument("--se-ratio", type=float, default=None, help="0.25 for a Y model")
    p.add_argument("--resolution", type=int, default=224, help="input height and width")


def add_complexity(sub) -> None:
    add_config_args(sub.add_parser("complexity", help="flops/params/acts of a model or custom config"))


def add_summary(sub) -> None:
    add_config_args(sub.add_parser("summary", help="print the Keras model summary"))


def add_plot(sub) -> None:
    p = sub.add_parser("plot", help="plot per-block widths of published models to a PNG")
    p.add_argument("names", nargs="+", help="published model names")
    p.add_argument("--out", default="regnet_widths.png", help="PNG path")


def add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert a pycls .pyth checkpoint to a Keras .weights.h5 file")
    p.add_argument("src", help="pycls .pyth checkpoint (zip or legacy format) or Keras .weights.h5")
    p.add_argument("dst", help="output path ending in .weights.h5")
    p.add_argument("--model", required=True, help="published model name, e.g. RegNetY-800MF")
    p.add_argument("--no-top", action="store_true", help="drop the classifier")


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train with pycls's recipe (default: RegNetX-200MF on the embedded CIFAR-10 subset)",
        description="Train a RegNet with pycls's recipe in model.fit. Every recipe setting can be "
        "overridden; running the same command again resumes an interrupted run.",
    )
    p.add_argument("--model", default="RegNetX-200MF", help="published model name")
    p.add_argument("--data", default="embedded",
                   help="'embedded', a CIFAR-10 JPEG .npz, an image directory, or a tfds name")
    p.add_argument("--data-dir", help="tfds data_dir")
    p.add_argument("--manual-dir", help="tfds manual_dir (imagenet2012)")
    p.add_argument("--output-dir", default="runs/regnet")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop cleanly after this much training time; the run can be resumed")
    add_recipe_args(p)
    p.add_argument("--small-images", action=argparse.BooleanOptionalAction, default=None,
                   help="stride-1 stem and CIFAR augmentation (default: image size <= 64)")
    p.add_argument("--mixed-precision", choices=["float32", "mixed_float16", "mixed_bfloat16", "float64"],
                   help="dtype policy (default float32; float64 is slow, for numerical checks)")
    p.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="auto, none, mirrored, multiworker, tpu")
    p.add_argument("--backup-every-steps", type=int, help="also back up mid-epoch every N steps")
    p.add_argument("--weights",
                   help="fine-tune from these weights: imagenet[:source] or a file (the backbone; the head too when "
                   "the data's classes are the weights'); default learning rate a tenth of --lr's rule, 1 warm-up epoch")
    p.add_argument("--freeze-epochs", type=int, default=0,
                   help="with --weights: train only the classifier for the first K epochs (backbone frozen, BatchNorm in "
                   "inference mode), then everything")
    p.add_argument("--freeze-bn", action="store_true",
                   help="with --weights: keep BatchNorm in inference mode with the weights' statistics (no precise BN)")
    p.add_argument("--seed", type=int, help="fix initial weights, shuffling and augmentation (default: random)")


def add_recipe_args(p) -> None:
    """Overrides of the :class:`~keras_regnet.training.Recipe` fields (unset: the recipe's value)."""
    p.add_argument("--epochs", type=int, help="default: 100 (pycls), 15 on the embedded subset")
    p.add_argument("--batch-size", type=int, help="default: pycls's for the model, 64 on the embedded subset")
    p.add_argument("--lr", type=float, dest="base_lr",
                   help="base learning rate (default: pycls's, scaled linearly with the batch size)")
    p.add_argument("--image-size", type=int, help="default 224, 32 on the embedded subset")
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--mixup", type=float)
    p.add_argument("--cutmix", type=float)
    p.add_argument("--randaugment", type=float)
    p.add_argument("--ema", type=float, dest="ema_decay")
    p.add_argument("--precise-bn-images", type=int,
                   help="recompute BatchNorm statistics over this many training images after each epoch "
                   "(pycls: 8192; 0 = off)")


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="top-1/top-5 error with the model's own eval transform (beside the published numbers for published weights)",
        description="Evaluate a model on a tfds split or an image folder; writes evaluation.json and "
        "evaluation.md to --output-dir. A .keras file written by 'train' brings its class names, size and eval "
        "transform, and its training run's validation error is shown beside the measurement; published models "
        "with the published weights are compared with the pycls table. --all evaluates the 24 published models "
        "and writes the model-zoo page.",
    )
    p.add_argument("--model", help="published model name or a .keras file")
    p.add_argument("--all", action="store_true", help="evaluate all published models (or those in --models)")
    p.add_argument("--models", help="with --all: comma-separated subset of published models")
    p.add_argument("--weights", default="imagenet", help="imagenet[:source], a weights file, or 'none'")
    p.add_argument("--data", default="imagenet2012", help="tfds name (validation split) or a directory of class folders")
    p.add_argument("--split", help="tfds split (default: validation)")
    p.add_argument("--data-dir", help="tfds data_dir")
    p.add_argument("--manual-dir", help="tfds manual_dir (imagenet2012)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--image-size", type=int, help="default: the model's own (224 for ImageNet models)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--output-dir", default="evaluation")
    p.add_argument("--zoo-page", default=os.path.join("docs", "model_zoo.md"),
                   help="with --all: where to write the model-zoo table")


def add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export for serving: saved_model (TF Serving), tflite, onnx",
        description="Export a model. saved_model writes OUTPUT/VERSION/ (TF Serving's layout) with a "
        "float-pixel and an encoded-image-bytes signature; tflite and onnx write one file.",
    )
    p.add_argument("--model", required=True, help="published model name or a .keras file")
    p.add_argument("--weights", default="imagenet", help="imagenet[:source], a weights file, or 'none'")
    p.add_argument("--format", required=True, help="saved_model, tflite or onnx")
    p.add_argument("--output", required=True, help="model base directory (saved_model) or output file")
    p.add_argument("--version", help="saved_model version number (default: next free one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version directory / file")
    p.add_argument("--image-size", type=int, default=224,
                   help="input height and width of a model built by name (a .keras file keeps its own)")
    p.add_argument("--top-k", type=int, default=5, help="saved_model: classes returned by the bytes signature")
    p.add_argument("--quantization", choices=["float16", "dynamic_int8"], help="tflite: weight quantization")
    p.add_argument("--opset", type=int, help="onnx: opset version")
