"""``keras-regnet``: inspect the RegNet design space and the published models.

Subcommands:
  zoo         the 24 published models: generator output and complexity
              against pycls's published table (``--build`` also builds every
              Keras model and counts its parameters)
  complexity  flops / params / acts of a published model or a custom config
  summary     the Keras summary of a model
  plot        a PNG of the per-block widths the generator gives
  convert     a pycls checkpoint (or Keras weights file) to Keras .weights.h5
  train       train with pycls's recipe (default: a small real CIFAR-10 subset, offline)
  evaluate    top-1/top-5 error on ImageNet (tfds) or an image folder vs the published numbers
  export      SavedModel for TF Serving, TFLite or ONNX
"""

from __future__ import annotations

import argparse
import math
import os
import sys

# TensorFlow's C++ start-up chatter drowns the tables this tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_config_args(p):
    p.add_argument("name", nargs="?", help="published model name, e.g. RegNetY-800MF")
    p.add_argument("--depth", type=int, help="custom config: depth d")
    p.add_argument("--w0", type=int, help="custom config: initial width (multiple of 8)")
    p.add_argument("--wa", type=float, help="custom config: width slope")
    p.add_argument("--wm", type=float, help="custom config: width multiplier (> 1)")
    p.add_argument("--group-width", type=int, help="custom config: group width")
    p.add_argument("--bottleneck-ratio", type=float, default=1.0)
    p.add_argument("--se-ratio", type=float, default=None, help="0.25 for a Y model")


def _config_from_args(args, parser):
    from keras_regnet.architecture.config import RegNetConfig
    from keras_regnet.architecture.zoo import lookup

    custom = [args.depth, args.w0, args.wa, args.wm, args.group_width]
    if args.name and any(v is not None for v in custom):
        parser.error("give either a model name or --depth/--w0/--wa/--wm/--group-width, not both")
    if args.name:
        return lookup(args.name).config, lookup(args.name).name
    if any(v is None for v in custom):
        parser.error("give a model name, or all of --depth --w0 --wa --wm --group-width")
    cfg = RegNetConfig(
        depth=args.depth,
        w0=args.w0,
        wa=args.wa,
        wm=args.wm,
        group_width=args.group_width,
        bottleneck_ratio=args.bottleneck_ratio,
        se_ratio=args.se_ratio,
    )
    return cfg, "custom"


def zoo_table(build: bool = False, progress: bool = True):
    """Rows comparing our generator/complexity (and built models) with pycls's table."""
    import keras

    from keras_regnet.architecture.complexity import complexity
    from keras_regnet.architecture.zoo import published_models

    rows = []
    models = list(published_models().values())
    bar = keras.utils.Progbar(len(models), unit_name="model") if (build and progress) else None
    for i, pub in enumerate(models):
        cfg = pub.config
        cx = complexity(cfg)
        row = {
            "name": pub.name,
            "stage_depths": cfg.stage_depths,
            "stage_widths": cfg.stage_widths,
            "stage_group_widths": cfg.stage_group_widths,
            "flops": cx["flops"],
            "params": cx["params"],
            "acts": cx["acts"],
            "top1_err": pub.top1_err,
            "matches": (
                cfg.stage_depths == pub.stage_depths
                and cfg.stage_widths == pub.stage_widths
                and cfg.stage_group_widths == pub.stage_group_widths
                and (cx["flops"], cx["params"], cx["acts"]) == (pub.flops, pub.params, pub.acts)
            ),
        }
        if build:
            from keras_regnet.architecture.models import get_model

            model = get_model(pub.name)
            row["keras_params"] = sum(math.prod(w.shape) for w in model.trainable_weights)
            row["matches"] = row["matches"] and row["keras_params"] == pub.params
            del model
            keras.backend.clear_session()
        rows.append(row)
        if bar is not None:
            bar.update(i + 1)
    return rows


def format_zoo_markdown(rows) -> str:
    build = "keras_params" in rows[0]
    head = "| model | stage depths | stage widths | group widths | GFLOPs | params | acts |"
    sep = "|---|---|---|---|---:|---:|---:|"
    if build:
        head += " Keras params |"
        sep += "---:|"
    head += " top-1 err | = pycls |"
    sep += "---:|:---:|"
    lines = [head, sep]
    for r in rows:
        line = (
            f"| {r['name']} | {list(r['stage_depths'])} | {list(r['stage_widths'])} | "
            f"{list(r['stage_group_widths'])} | {r['flops'] / 1e9:.3f} | {r['params']:,} | "
            f"{r['acts']:,} |"
        )
        if build:
            line += f" {r['keras_params']:,} |"
        line += f" {r['top1_err']:.2f} | {'yes' if r['matches'] else 'NO'} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="keras-regnet", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p_zoo = sub.add_parser("zoo", help="check the 24 published models against pycls's table")
    p_zoo.add_argument("--build", action="store_true", help="also build each Keras model")
    p_zoo.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")

    p_cx = sub.add_parser("complexity", help="flops/params/acts of a model or custom config")
    _add_config_args(p_cx)
    p_cx.add_argument("--resolution", type=int, default=224)

    p_sum = sub.add_parser("summary", help="print the Keras model summary")
    _add_config_args(p_sum)
    p_sum.add_argument("--resolution", type=int, default=224)

    p_plot = sub.add_parser("plot", help="plot per-block widths of published models to a PNG")
    p_plot.add_argument("names", nargs="+", help="published model names")
    p_plot.add_argument("--out", default="regnet_widths.png", help="PNG path")

    p_conv = sub.add_parser("convert", help="convert a pycls .pyth checkpoint to a Keras .weights.h5 file")
    p_conv.add_argument("src", help="pycls .pyth checkpoint (zip or legacy format) or Keras .weights.h5")
    p_conv.add_argument("dst", help="output path ending in .weights.h5")
    p_conv.add_argument("--model", required=True, help="published model name, e.g. RegNetY-800MF")
    p_conv.add_argument("--no-top", action="store_true", help="drop the classifier")

    p_train = sub.add_parser(
        "train",
        help="train with pycls's recipe (default: RegNetX-200MF on the embedded CIFAR-10 subset)",
        description="Train a RegNet with pycls's recipe in model.fit. Every recipe setting can be "
        "overridden; running the same command again resumes an interrupted run.",
    )
    p_train.add_argument("--model", default="RegNetX-200MF", help="published model name")
    p_train.add_argument("--data", default="embedded",
                         help="'embedded', a CIFAR-10 JPEG .npz, an image directory, or a tfds name")
    p_train.add_argument("--data-dir", help="tfds data_dir")
    p_train.add_argument("--manual-dir", help="tfds manual_dir (imagenet2012)")
    p_train.add_argument("--output-dir", default="runs/regnet")
    p_train.add_argument("--epochs", type=int, help="default: 100 (pycls), 15 on the embedded subset")
    p_train.add_argument("--batch-size", type=int, help="default: pycls's for the model, 64 on the embedded subset")
    p_train.add_argument("--lr", type=float, help="base learning rate (default 0.1 x batch / 128)")
    p_train.add_argument("--image-size", type=int, help="default 224, 32 on the embedded subset")
    p_train.add_argument("--small-images", action=argparse.BooleanOptionalAction, default=None,
                         help="stride-1 stem and CIFAR augmentation (default: image size <= 64)")
    p_train.add_argument("--warmup-epochs", type=int)
    p_train.add_argument("--weight-decay", type=float)
    p_train.add_argument("--optimizer", choices=["sgd", "adamw"])
    p_train.add_argument("--label-smoothing", type=float)
    p_train.add_argument("--mixup", type=float)
    p_train.add_argument("--cutmix", type=float)
    p_train.add_argument("--randaugment", type=float)
    p_train.add_argument("--ema", type=float, dest="ema_decay")
    p_train.add_argument("--mixed-precision", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    p_train.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    p_train.add_argument("--steps-per-execution", type=int, default=1)
    p_train.add_argument("--strategy", default="auto", help="auto, none, mirrored, multiworker, tpu")
    p_train.add_argument("--backup-every-steps", type=int, help="also back up mid-epoch every N steps")
    p_train.add_argument("--weights", help="initial weights: imagenet[:source] or a file")

    p_eval = sub.add_parser(
        "evaluate",
        help="top-1/top-5 error vs the published numbers (pycls's eval transform)",
        description="Evaluate a model on a tfds split or an image folder; writes evaluation.json and "
        "evaluation.md to --output-dir. --all evaluates the 24 published models and writes the model-zoo page.",
    )
    p_eval.add_argument("--model", help="published model name or a .keras file")
    p_eval.add_argument("--all", action="store_true", help="evaluate all published models (or those in --models)")
    p_eval.add_argument("--models", help="with --all: comma-separated subset of published models")
    p_eval.add_argument("--weights", default="imagenet", help="imagenet[:source], a weights file, or 'none'")
    p_eval.add_argument("--data", default="imagenet2012", help="tfds name (validation split) or a directory of class folders")
    p_eval.add_argument("--split", help="tfds split (default: validation)")
    p_eval.add_argument("--data-dir", help="tfds data_dir")
    p_eval.add_argument("--manual-dir", help="tfds manual_dir (imagenet2012)")
    p_eval.add_argument("--batch-size", type=int, default=100)
    p_eval.add_argument("--image-size", type=int, default=224)
    p_eval.add_argument("--limit", type=int, help="evaluate only the first N images")
    p_eval.add_argument("--output-dir", default="evaluation")
    p_eval.add_argument("--zoo-page", default=os.path.join("docs", "model_zoo.md"),
                        help="with --all: where to write the model-zoo table")

    p_exp = sub.add_parser(
        "export",
        help="export for serving: saved_model (TF Serving), tflite, onnx",
        description="Export a model. saved_model writes OUTPUT/VERSION/ (TF Serving's layout) with a "
        "float-pixel and an encoded-image-bytes signature; tflite and onnx write one file.",
    )
    p_exp.add_argument("--model", required=True, help="published model name or a .keras file")
    p_exp.add_argument("--weights", default="imagenet", help="imagenet[:source], a weights file, or 'none'")
    p_exp.add_argument("--format", required=True, help="saved_model, tflite or onnx")
    p_exp.add_argument("--output", required=True, help="model base directory (saved_model) or output file")
    p_exp.add_argument("--version", help="saved_model version number (default: next free one)")
    p_exp.add_argument("--overwrite", action="store_true", help="replace an existing version directory / file")
    p_exp.add_argument("--image-size", type=int, default=224, help="input height and width of the exported model")
    p_exp.add_argument("--top-k", type=int, default=5, help="saved_model: classes returned by the bytes signature")
    p_exp.add_argument("--quantization", choices=["float16", "dynamic_int8"], help="tflite: weight quantization")
    p_exp.add_argument("--opset", type=int, help="onnx: opset version")

    for subparser in sub.choices.values():  # --debug also after the subcommand
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of an error")
    args = parser.parse_args(argv)
    args.command_line = "keras-regnet " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args, parser)
    except KeyboardInterrupt:
        print("keras-regnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user; the traceback with --debug
        if args.debug:
            raise
        print(f"keras-regnet: error: {describe_error(e)}", file=sys.stderr)
        return 2 if isinstance(e, (ValueError, FileExistsError)) else 1  # 2: refused input, as argparse


EXPECTED_ERRORS = (ValueError, OSError, LookupError)


def describe_error(e: BaseException) -> str:
    """One line for an exception: its message, or what the OS said about which file."""
    if isinstance(e, OSError) and e.strerror and not isinstance(e, FileExistsError):
        where = f": {e.filename}" if e.filename else ""
        text = f"{e.strerror}{where}"
    else:
        text = str(e).strip() or type(e).__name__
    text = " ".join(text.splitlines()[0].split())
    if not isinstance(e, EXPECTED_ERRORS):
        text = f"{text} ({type(e).__name__}; run again with --debug for the traceback)"
    return text


def _run(args, parser) -> int:
    if args.command == "zoo":
        rows = zoo_table(build=args.build)
        text = format_zoo_markdown(rows)
        print(text)
        if args.markdown:
            from keras_regnet.atomic import write_text

            write_text(args.markdown, text)
        bad = [r["name"] for r in rows if not r["matches"]]
        print(f"{len(rows) - len(bad)}/{len(rows)} models equal pycls's published numbers.")
        return 1 if bad else 0

    if args.command == "plot":
        from keras_regnet.architecture.plotting import plot_block_widths

        print(f"wrote {plot_block_widths(args.names, args.out)}")
        return 0

    if args.command == "convert":
        from keras_regnet.architecture.models import get_model
        from keras_regnet.weights.resolve import detect_format, file_source, save_weights_atomic

        if not args.dst.endswith(".weights.h5"):
            raise ValueError(f"dst must end in '.weights.h5' (Keras's weights format); got dst={args.dst!r}.")
        model = get_model(args.model, weights=args.src, include_top=not args.no_top)
        save_weights_atomic(model, args.dst, source=file_source(args.src, detect_format(args.src)))
        print(f"wrote {args.dst} ({model.name}, {model.count_params():,} parameters)")
        return 0

    if args.command == "train":
        return _train(args)
    if args.command == "evaluate":
        return _evaluate(args, parser)
    if args.command == "export":
        return _export(args)

    cfg, label = _config_from_args(args, parser)
    if args.command == "complexity":
        from keras_regnet.architecture.complexity import complexity

        cx = complexity(cfg, resolution=args.resolution)
        print(f"{label}: stage depths {list(cfg.stage_depths)}, widths {list(cfg.stage_widths)}, "
              f"group widths {list(cfg.stage_group_widths)}")
        print(f"flops {cx['flops']:,} ({cx['flops'] / 1e9:.3f} G multiply-adds) at "
              f"{args.resolution}x{args.resolution}; params {cx['params']:,}; acts {cx['acts']:,}")
        return 0
    if args.command == "summary":
        from keras_regnet.architecture.models import RegNet

        RegNet(cfg, input_shape=(args.resolution, args.resolution, 3), name=label.replace("-", "_").replace(".", "_").lower()).summary()
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


EMBEDDED_DEFAULTS = dict(epochs=15, batch_size=64, image_size=32, warmup_epochs=2)


def _train(args) -> int:
    from keras_regnet.training.callbacks import TrainingDiverged
    from keras_regnet.training import Recipe, train

    overrides = {
        "epochs": args.epochs, "batch_size": args.batch_size, "base_lr": args.lr, "image_size": args.image_size,
        "warmup_epochs": args.warmup_epochs, "weight_decay": args.weight_decay, "optimizer": args.optimizer,
        "label_smoothing": args.label_smoothing, "mixup": args.mixup, "cutmix": args.cutmix,
        "randaugment": args.randaugment, "ema_decay": args.ema_decay,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.data == "embedded":
        # 4,000 training images: a short, CPU-sized run unless told otherwise.
        overrides = {**EMBEDDED_DEFAULTS, **overrides}
        if "base_lr" not in overrides:
            overrides["base_lr"] = 0.1 * overrides["batch_size"] / 128
    recipe = Recipe.for_model(args.model, **overrides)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    try:
        results = train(
            args.model, data=args.data, output_dir=args.output_dir, recipe=recipe, small_images=args.small_images,
            weights=args.weights, data_dir=args.data_dir, manual_dir=args.manual_dir,
            mixed_precision=args.mixed_precision, jit_compile=jit, steps_per_execution=args.steps_per_execution,
            strategy=args.strategy, backup_every_steps=args.backup_every_steps, verbose=2,
        )
    except TrainingDiverged as e:
        print(f"keras-regnet: {e}", file=sys.stderr)
        return 3
    final = results["final"] or {}
    print(
        f"{results['model']} on {args.data}: validation accuracy {final.get('val_accuracy', float('nan')):.4f} "
        f"(top-5 {final.get('val_top5_accuracy', float('nan')):.4f}); outputs in {args.output_dir} "
        "(best.keras, last.keras, log.csv, curves.png, results.json)"
    )
    return 0


def _weights_arg(text):
    return None if text is None or text.lower() == "none" else text


def _evaluate(args, parser) -> int:
    from keras_regnet.evaluation import evaluate, evaluate_all, markdown_table, write_report

    common = dict(
        data=args.data, weights=_weights_arg(args.weights), batch_size=args.batch_size, image_size=args.image_size,
        split=args.split, data_dir=args.data_dir, manual_dir=args.manual_dir, limit=args.limit,
    )
    if args.all == bool(args.model):
        parser.error("give either --model or --all")
    if args.all:
        models = [m.strip() for m in args.models.split(",")] if args.models else None
        results = evaluate_all(
            args.output_dir, models=models, zoo_page=args.zoo_page, command=args.command_line, **common
        )
        print(f"wrote {args.zoo_page}")
    else:
        results = [evaluate(args.model, **common)]
        write_report(results, args.output_dir)
    print(markdown_table(results))
    print(f"wrote {os.path.join(args.output_dir, 'evaluation.json')} and evaluation.md")
    return 0


def _export(args) -> int:
    from keras_regnet.export import export, output_path
    from keras_regnet.architecture.models import model_from_argument

    fmt = args.format
    output_path(fmt, args.output, args.version, args.overwrite)  # bad destinations fail before the model build
    options = {}
    if fmt == "saved_model":
        options = {"version": args.version, "top_k": args.top_k}
    elif fmt == "tflite":
        options = {"quantization": args.quantization}
    elif args.opset is not None:
        options = {"opset": args.opset}
    size = args.image_size
    model, name, _ = model_from_argument(args.model, _weights_arg(args.weights), input_shape=(size, size, 3))
    path = export(model, fmt, args.output, overwrite=args.overwrite, **options)
    print(f"wrote {path} ({name}, {fmt})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
