"""``keras-regnet space ...``: the design-space commands (sample, sweep, analyze, fit, scale).

The parser half (:func:`add_space`) imports nothing heavy; each ``run_*``
imports what it needs.  Every argument is checked, by the library functions
these call, before any sampling or training starts.
"""

from __future__ import annotations

import json
import os

def add_space(sub) -> None:
    p = sub.add_parser("space", help="design spaces: sample, sweep, analyze, fit, scale")
    actions = p.add_subparsers(dest="action", required=True)
    _add_sample(actions)
    _add_sweep(actions)
    _add_analyze(actions)
    _add_fit(actions)
    _add_scale(actions)


def _add_band_args(p) -> None:
    p.add_argument("--flops", nargs=2, type=float, metavar=("LOW", "HIGH"), help="flops (multiply-adds) band")
    p.add_argument("--params", nargs=2, type=float, metavar=("LOW", "HIGH"), help="parameters band")
    p.add_argument("--acts", nargs=2, type=float, metavar=("LOW", "HIGH"), help="activations band")
    p.add_argument("--resolution", type=int, default=None, help="image size the complexity is counted at")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same networks)")


def _add_sample(actions) -> None:
    p = actions.add_parser("sample", help="draw networks of a design space within complexity bands")
    p.add_argument("space", help="AnyNetX_A ... AnyNetX_E, RegNetX or RegNetY")
    p.add_argument("--n", type=int, default=10, help="networks to draw")
    _add_band_args(p)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--cifar-stem", action="store_true", help="stride-1 stem (small images)")
    p.add_argument("--output", metavar="FILE.json", help="also write the configs and their complexity as JSON")


def _add_sweep(actions) -> None:
    p = actions.add_parser(
        "sweep", help="train networks sampled from one or more spaces (Dask; resumable: run again to continue)"
    )
    p.add_argument("spaces", nargs="+", help="one or more design spaces; their trials run interleaved")
    p.add_argument("--n", type=int, required=True, help="networks per space")
    _add_band_args(p)
    p.add_argument("--data", default="embedded", help="embedded, a CIFAR-10 JPEG .npz, an image folder or a tfds name")
    p.add_argument("--train-images", type=int, help="use the first N training images")
    p.add_argument("--validation-images", type=int, help="use the first N validation images")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--base-lr", type=float, help="default: 0.1 x batch / 128")
    p.add_argument("--warmup-epochs", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=5e-5)
    p.add_argument("--num-classes", type=int, default=10, help="classes of --data (10 for CIFAR-10)")
    p.add_argument("--out", required=True, help="folder of the results (OUT/<space>.json) and trial runs")
    p.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786); default: local workers")
    p.add_argument("--workers", type=int, help="local worker processes (default: the CPU count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_analyze(actions) -> None:
    p = actions.add_parser("analyze", help="EDFs, KS statistics, good ranges and plots of sweep results")
    p.add_argument("results", nargs="+", help="sweep results files (one per space)")
    p.add_argument("--out", required=True, help="folder for the plots and the summary (summary.json, summary.md)")
    p.add_argument("--normalize-bins", type=int, default=0, help="also plot complexity-normalised EDFs with this many flops bins")


def _add_fit(actions) -> None:
    p = actions.add_parser("fit", help="fit (w0, wa, wm, depth) to per-block widths; print e_fit")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a published model name: fit its per-block widths")
    src.add_argument("--widths", nargs="+", type=int, help="per-block widths, one per block")
    p.add_argument("--plot", metavar="FILE.png", help="also plot the widths and the fitted line")


def _add_scale(actions) -> None:
    p = actions.add_parser("scale", help="scale a published model to a flops budget")
    p.add_argument("model", help="a published model name")
    p.add_argument("--flops", type=float, required=True, help="target flops (multiply-adds)")
    p.add_argument("--resolution", type=int, default=224, help="the model's resolution now")
    p.add_argument("--method", choices=("compound", "tinynet"), default="compound")


def run_space(args, parser) -> int:
    """Dispatch ``keras-regnet space <action>``."""
    return {"sample": run_sample, "sweep": run_sweep, "analyze": run_analyze, "fit": run_fit, "scale": run_scale}[
        args.action
    ](args, parser)


def _bands(args) -> dict:
    return {k + "_range": tuple(getattr(args, k)) if getattr(args, k) else None for k in ("flops", "params", "acts")}


def run_sample(args, parser) -> int:
    from keras_regnet.architecture.complexity import complexity
    from keras_regnet.design_space import sample
    from keras_regnet.design_space.sweep import config_record

    resolution = args.resolution or (32 if args.cifar_stem else 224)
    configs = sample(args.space, args.n, args.seed, **_bands(args), resolution=resolution,
                     num_classes=args.num_classes, stem_stride=1 if args.cifar_stem else 2)
    rows = []
    for i, cfg in enumerate(configs):
        cx = complexity(cfg, resolution, args.num_classes)
        rows.append({"config": config_record(cfg), "complexity": cx})
        stages = [f"{s.depth}x{s.width}(b{s.bottleneck_ratio:g},g{s.group_width})" for s in cfg.stages]
        print(f"{i:4d}  flops {cx['flops'] / 1e6:9.2f}M  params {cx['params'] / 1e6:7.3f}M  {' '.join(stages)}")
    if args.output:
        from keras_regnet.atomic import write_text

        write_text(args.output, json.dumps({"space": args.space, "resolution": resolution, "networks": rows}, indent=1))
    return 0


def run_sweep(args, parser) -> int:
    from keras_regnet.design_space.sweep import SweepSpec, run_sweeps

    resolution = args.resolution or 32
    specs = [
        SweepSpec(space, args.n, args.seed, **_bands(args), resolution=resolution, data=args.data,
                  train_images=args.train_images, validation_images=args.validation_images, epochs=args.epochs,
                  batch_size=args.batch_size, base_lr=args.base_lr, warmup_epochs=args.warmup_epochs,
                  weight_decay=args.weight_decay, num_classes=args.num_classes)
        for space in args.spaces
    ]
    repeated = sorted({s for s in args.spaces if args.spaces.count(s) > 1})
    if repeated:
        parser.error(f"give each space once; repeated: {', '.join(repeated)}")
    paths = [os.path.join(args.out, f"{spec.space}.json") for spec in specs]
    results = run_sweeps(list(zip(specs, paths)), scheduler=args.scheduler, workers=args.workers,
                         progress=not args.no_progress)
    for spec, path, res in zip(specs, paths, results):
        errors = sorted(t["error"] for t in res["trials"] if t["error"] is not None)
        best = f", best error {errors[0]:.2f}%" if errors else ""
        print(f"{spec.space}: {len(res['trials'])}/{spec.n} trials in {path}{best}")
    return 0


def run_analyze(args, parser) -> int:
    from keras_regnet.design_space.report import analyze_sweeps

    summary = analyze_sweeps(args.results, args.out, normalize_bins=args.normalize_bins or None)
    print(summary["markdown"])
    return 0


def run_fit(args, parser) -> int:
    from keras_regnet.design_space.fitting import fit_regnet

    if args.model:
        from keras_regnet.architecture.zoo import lookup

        published = lookup(args.model)
        widths, label = published.config.block_widths, published.name
    else:
        widths, label = tuple(args.widths), "widths"
    fit = fit_regnet(widths)
    print(f"{label}: depth={fit.depth} w0={fit.w0} wa={fit.wa:.2f} wm={fit.wm:.3f} e_fit={fit.e_fit:.4f}")
    print(f"  regenerated widths {'equal' if tuple(fit.block_widths) == tuple(widths) else 'differ from'} the given ones")
    if args.plot:
        from keras_regnet.design_space.plots import plot_width_fit

        plot_width_fit(widths, fit, args.plot, title=label)
        print(f"  plot: {args.plot}")
    return 0


def run_scale(args, parser) -> int:
    from keras_regnet.architecture.complexity import complexity
    from keras_regnet.architecture.zoo import lookup
    from keras_regnet.design_space.scaling import fit_to_budget, scale_model

    if not args.flops > 0:
        parser.error(f"--flops must be a number of flops > 0; got {args.flops}")
    published = lookup(args.model)
    base = complexity(published.config, args.resolution)["flops"]
    if args.method == "compound":
        scaled = scale_model(published.config, args.flops / base, resolution=args.resolution)
    else:
        scaled = fit_to_budget(published.config, args.flops, resolution=args.resolution)
    cfg = scaled.config
    print(f"{published.name} at {args.resolution}px: {base / 1e6:,.1f}M flops -> {args.method} scaling to "
          f"{args.flops / 1e6:,.1f}M:")
    print(f"  resolution {scaled.resolution}, stage depths {list(cfg.depths)}, widths {list(cfg.widths)}, "
          f"group widths {list(cfg.group_widths)}")
    print(f"  exact flops {scaled.flops:,} ({scaled.flops / args.flops:.3f} x the target)")
    return 0
