"""``keras-regnet``: inspect, train, evaluate and export the RegNet models.

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
  space       design spaces: sample networks, sweep (train populations on
              Dask), analyze (EDFs, KS, good ranges), fit (w0, wa, wm), scale

Exit status: 0 success, 1 failure, 2 refused input (as argparse), 3 training
diverged, 130 interrupted.  Errors end in one line, ``keras-regnet: error:
...``; ``--debug`` shows the traceback, ``--verbose`` TensorFlow's start-up
log lines.
"""

from __future__ import annotations

import sys

from keras_regnet.cli import commands
from keras_regnet.cli.parser import build_parser

EXPECTED_ERRORS = (ValueError, OSError, LookupError)
# Refused input exits 2, as argparse does for a bad argument.
REFUSED_INPUT = (ValueError, FileExistsError)


def main(argv=None) -> int:
    """Run ``keras-regnet`` with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "keras-regnet " + " ".join(sys.argv[1:] if argv is None else argv)
    run = getattr(commands, f"run_{args.command}")
    try:
        if commands.uses_keras(args):
            from keras_regnet.cli.quiet import start_keras

            start_keras(verbose=args.verbose)
        return run(args, parser)
    except KeyboardInterrupt:
        print("keras-regnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user; the traceback with --debug
        if args.debug:
            raise
        print(f"keras-regnet: error: {describe_error(e)}", file=sys.stderr)
        return 2 if isinstance(e, REFUSED_INPUT) else 1


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


def __getattr__(name):
    # Old names of the published-table check, kept for code that imported
    # them from here (the check now lives in keras_regnet.architecture.published).
    if name in ("zoo_table", "format_zoo_markdown"):
        from keras_regnet.architecture import published

        return published.compare_with_published if name == "zoo_table" else published.format_markdown
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
