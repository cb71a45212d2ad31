"""What each ``keras-regnet`` subcommand does: ``run_<command>(args, parser)`` returns the exit status.

Each imports what it needs when it runs, so the parser answers without
Keras.  Keras itself has already been started (quietly) by
:func:`keras_regnet.cli.main.main` for the commands in :data:`USES_KERAS`.
"""

from __future__ import annotations

import os
import sys

from keras_regnet.cli.space import run_space  # noqa: F401  (keras-regnet space ...)

# The commands that build or load models (``zoo`` only with ``--build``).
USES_KERAS = ("summary", "convert", "train", "evaluate", "export")

# The recipe fields the train options override; unset options keep the recipe's value.
RECIPE_OPTIONS = (
    "epochs", "batch_size", "base_lr", "image_size", "warmup_epochs", "weight_decay", "optimizer",
    "label_smoothing", "mixup", "cutmix", "randaugment", "ema_decay", "precise_bn_images",
)
# 4,000 training images: a short, CPU-sized run unless told otherwise.  The
# learning rate follows the batch size by the recipe's rule.
EMBEDDED_DEFAULTS = dict(epochs=15, batch_size=64, image_size=32, warmup_epochs=2)


def uses_keras(args) -> bool:
    """Whether the command builds or loads a Keras model."""
    return args.command in USES_KERAS or (args.command == "zoo" and args.build)


def run_zoo(args, parser) -> int:
    from keras_regnet.architecture.published import compare_with_published, format_markdown

    rows = compare_with_published(build=args.build)
    text = format_markdown(rows)
    print(text)
    if args.markdown:
        from keras_regnet.atomic import write_text

        write_text(args.markdown, text)
    bad = [r["name"] for r in rows if not r["matches"]]
    print(f"{len(rows) - len(bad)}/{len(rows)} models equal pycls's published numbers.")
    return 1 if bad else 0


def config_from_args(args, parser):
    """(config, label) of the model the config arguments name, published or custom."""
    from keras_regnet.architecture.config import RegNetConfig
    from keras_regnet.architecture.zoo import lookup

    custom = dict(depth=args.depth, w0=args.w0, wa=args.wa, wm=args.wm, group_width=args.group_width)
    if args.name and any(v is not None for v in custom.values()):
        parser.error("give either a model name or --depth/--w0/--wa/--wm/--group-width, not both")
    if args.name:
        published = lookup(args.name)
        return published.config, published.name
    if any(v is None for v in custom.values()):
        parser.error("give a model name, or all of --depth --w0 --wa --wm --group-width")
    cfg = RegNetConfig(**custom, bottleneck_ratio=args.bottleneck_ratio, se_ratio=args.se_ratio)
    return cfg, "custom"


def run_complexity(args, parser) -> int:
    from keras_regnet.architecture.complexity import complexity

    cfg, label = config_from_args(args, parser)
    cx = complexity(cfg, resolution=args.resolution)
    print(f"{label}: stage depths {list(cfg.stage_depths)}, widths {list(cfg.stage_widths)}, "
          f"group widths {list(cfg.stage_group_widths)}")
    print(f"flops {cx['flops']:,} ({cx['flops'] / 1e9:.3f} G multiply-adds) at "
          f"{args.resolution}x{args.resolution}; params {cx['params']:,}; acts {cx['acts']:,}")
    return 0


def run_summary(args, parser) -> int:
    from keras_regnet.architecture.models import RegNet

    cfg, label = config_from_args(args, parser)
    name = label.replace("-", "_").replace(".", "_").lower()
    RegNet(cfg, input_shape=(args.resolution, args.resolution, 3), name=name).summary()
    return 0


def run_plot(args, parser) -> int:
    from keras_regnet.architecture.plotting import plot_block_widths

    print(f"wrote {plot_block_widths(args.names, args.out)}")
    return 0


def run_convert(args, parser) -> int:
    from keras_regnet.architecture.models import get_model
    from keras_regnet.weights.resolve import detect_format, file_source, save_weights_atomic

    if not args.dst.endswith(".weights.h5"):
        raise ValueError(f"dst must end in '.weights.h5' (Keras's weights format); got dst={args.dst!r}.")
    model = get_model(args.model, weights=args.src, include_top=not args.no_top)
    save_weights_atomic(model, args.dst, source=file_source(args.src, detect_format(args.src)))
    print(f"wrote {args.dst} ({model.name}, {model.count_params():,} parameters)")
    return 0


def train_recipe(args):
    """The recipe for the train options: pycls's for the model, the options on top."""
    from keras_regnet.training import Recipe, finetuning_recipe

    given = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    overrides = {**EMBEDDED_DEFAULTS, **given} if args.data == "embedded" else given
    recipe = Recipe.for_model(args.model, **overrides)
    if args.weights is None:
        return recipe
    return finetuning_recipe(recipe, keep_lr="base_lr" in given, keep_warmup="warmup_epochs" in given)


def run_train(args, parser) -> int:
    from keras_regnet.training import TrainingDiverged, train

    options = dict(
        data=args.data, output_dir=args.output_dir, recipe=train_recipe(args), small_images=args.small_images,
        weights=args.weights, data_dir=args.data_dir, manual_dir=args.manual_dir,
        mixed_precision=args.mixed_precision, jit_compile={"auto": "auto", "true": True, "false": False}[args.jit_compile],
        steps_per_execution=args.steps_per_execution, strategy=args.strategy,
        backup_every_steps=args.backup_every_steps, time_budget_s=args.time_budget, seed=args.seed, verbose=2,
        freeze_epochs=args.freeze_epochs, freeze_batch_norm=args.freeze_bn,
    )
    try:
        results = train(args.model, **options)
    except TrainingDiverged as e:
        print(f"keras-regnet: {e}", file=sys.stderr)
        return 3
    final = results["final"] or {}
    print(
        f"{results['model']} on {args.data}: validation accuracy {final.get('val_accuracy', float('nan')):.4f} "
        f"(top-5 {final.get('val_top5_accuracy', float('nan')):.4f}); outputs in {args.output_dir} "
        "(best.keras, last.keras, log.csv, curves.png, results.json)"
    )
    if results.get("complete") is False:
        print(
            f"stopped for the time budget after {results['epochs_done']} of {results['recipe']['epochs']} epochs; "
            "run the same command again to continue"
        )
    return 0


def weights_option(text):
    """The ``--weights`` option as the builders take it (``'none'``: random initialisation)."""
    return None if text is None or text.lower() == "none" else text


def run_evaluate(args, parser) -> int:
    from keras_regnet.evaluation import evaluate, evaluate_all, markdown_table, write_report

    if args.all == bool(args.model):
        parser.error("give either --model or --all")
    common = dict(
        data=args.data, weights=weights_option(args.weights), batch_size=args.batch_size, image_size=args.image_size,
        split=args.split, data_dir=args.data_dir, manual_dir=args.manual_dir, limit=args.limit,
    )
    if args.all:
        models = [m.strip() for m in args.models.split(",")] if args.models else None
        results = evaluate_all(args.output_dir, models=models, zoo_page=args.zoo_page, command=args.command_line, **common)
        print(f"wrote {args.zoo_page}")
    else:
        results = [evaluate(args.model, **common)]
        write_report(results, args.output_dir)
    print(markdown_table(results))
    print(f"wrote {os.path.join(args.output_dir, 'evaluation.json')} and evaluation.md")
    return 0


def export_options(args) -> dict:
    """The options of the chosen format."""
    if args.format == "saved_model":
        return {"version": args.version, "top_k": args.top_k}
    if args.format == "tflite":
        return {"quantization": args.quantization}
    return {} if args.opset is None else {"opset": args.opset}


def run_export(args, parser) -> int:
    from keras_regnet.architecture.models import model_from_argument
    from keras_regnet.export import export, output_path

    output_path(args.format, args.output, args.version, args.overwrite)  # bad destinations fail before the build
    size = args.image_size
    model, name, _ = model_from_argument(args.model, weights_option(args.weights), input_shape=(size, size, 3))
    path = export(model, args.format, args.output, overwrite=args.overwrite, **export_options(args))
    print(f"wrote {path} ({name}, {args.format})")
    return 0
