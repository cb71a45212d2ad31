"""Parity with torchvision's RegNets, checked by hand (not a pytest test).

torchvision cannot be a test dependency: its only Linux wheels on PyPI are
CUDA builds, which fail to import beside the CPU ``torch==2.13.0`` the tests
install ("operator torchvision::nms does not exist"), and a CUDA torch is
gigabytes. So the reference runs in a second interpreter that has torchvision,
and this script, run with keras_regnet's interpreter, compares::

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    python tools/check_torchvision_parity.py --torchvision-python /tmp/tvenv/bin/python

(``KERAS_REGNET_TORCHVISION_PYTHON`` may name the interpreter instead.)

For every torchvision RegNet in ``keras_regnet/weights/manifest.json`` the
interpreter builds ``torchvision.models.<builder>(weights=None)`` with every
parameter and BatchNorm statistic random, saves its state dict
(``torch.save``) and its logits for a fixed RGB [0, 255] batch. Then:

* a model whose architecture equals pycls's loads the file with
  ``weights=PATH`` and must give the same logits (relative error <= 1e-4,
  same arg-max);
* a model the manifest marks incompatible must be refused, for the file
  (naming the first mismatching parameter) and for
  ``weights="imagenet:torchvision-v2"``, and torchvision's real stage widths
  must be the ones the manifest's reason states.

Prints one line per model; exit status 0 when all pass, 1 otherwise.
``--models`` restricts the check to some paper names (e.g. RegNetY-400MF).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

TOLERANCE = 1e-4
SOURCE = "torchvision-v2"


def build_references(out_dir, seed, builders):
    """Reference role (torchvision's interpreter): ``<builder>.pth`` and ``<builder>.npz`` per builder."""
    import torch
    import torchvision

    x = np.random.default_rng(seed).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels = torch.from_numpy(((x / 255.0 - mean) / std).transpose(0, 3, 1, 2).astype("float32"))
    for builder in builders:
        torch.manual_seed(seed)
        model = getattr(torchvision.models, builder)(weights=None).eval()
        with torch.no_grad():
            for name, t in model.state_dict().items():
                if name.endswith("num_batches_tracked"):
                    continue
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape) + 0.5)
                elif t.ndim == 1:  # BN gamma around 1 (".1.weight"), betas, means and biases around 0
                    t.copy_(torch.randn(t.shape) * 0.1 + (1.0 if name.endswith(".1.weight") else 0.0))
                else:
                    t.copy_(torch.randn(t.shape) / np.sqrt(np.prod(t.shape[1:])))
            logits = model(pixels).numpy()
        torch.save(model.state_dict(), os.path.join(out_dir, f"{builder}.pth"))
        widths = [stage[-1].f.c[0].out_channels for stage in model.trunk_output]
        np.savez(os.path.join(out_dir, f"{builder}.npz"), x=x, logits=logits, widths=np.array(widths))


def torchvision_models(names=None):
    """``{paper name: (torchvision builder, manifest entry)}`` for the models torchvision has."""
    from keras_regnet.weights.resolve import manifest

    found = {}
    for name, sources in manifest().items():
        entry = sources.get(SOURCE)
        if entry:
            builder = os.path.basename(entry["url"]).split("-")[0]  # regnet_y_400mf-e6988f5f.pth
            found[name] = (builder, entry)
    unknown = sorted(set(names or ()) - set(found))
    if unknown:
        raise SystemExit(f"--models: torchvision has no {', '.join(unknown)}; it has {', '.join(found)}.")
    return {name: found[name] for name in found if not names or name in names}


def check_identical(name, path, reference):
    """Logits of ``weights=PATH`` against torchvision's; a problem, or ``None`` and the relative error."""
    import keras_regnet

    model = keras_regnet.get_model(name, weights=str(path), classifier_activation=None)
    got = np.asarray(model.predict_on_batch(reference["x"]))
    expected = reference["logits"]
    rel = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    if rel > TOLERANCE:
        return f"relative logit error {rel:.2e} > {TOLERANCE:g}", rel
    if not np.array_equal(got.argmax(1), expected.argmax(1)):
        return "arg-max differs", rel
    return None, rel


def check_refused(name, path, reference, entry):
    """Both ways of loading an incompatible model must be refused; a problem, or ``None``."""
    import keras_regnet

    widths = [int(w) for w in reference["widths"]]
    if f"torchvision's stage widths {widths}" not in entry["incompatible"]:
        return f"torchvision's stage widths are {widths}; the manifest says: {entry['incompatible']}"
    attempts = [
        (str(path), r"torchvision parameter '.*' has shape .* but layer '.*' expects"),
        (f"imagenet:{SOURCE}", r"cannot be used for .*: torchvision's stage widths"),
    ]
    for weights, expected in attempts:
        try:
            keras_regnet.get_model(name, weights=weights)
        except ValueError as e:
            if not re.search(expected, str(e)):
                return f"weights={weights!r} raised an unexpected error: {e}"
        else:
            return f"weights={weights!r} was accepted"
    return None


def run_reference(python, out_dir, seed, builders):
    proc = subprocess.run(
        [python, os.path.abspath(__file__), "reference", out_dir, str(seed), *builders],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the torchvision reference failed under {python}:\n{proc.stderr[-3000:]}")


def check(python, names=None, seed=0):
    """Run every check; the number of failures."""
    import keras

    models = torchvision_models(names)
    failures = 0
    with tempfile.TemporaryDirectory() as out_dir:
        run_reference(python, out_dir, seed, [builder for builder, _ in models.values()])
        for name, (builder, entry) in models.items():
            path = os.path.join(out_dir, f"{builder}.pth")
            reference = np.load(os.path.join(out_dir, f"{builder}.npz"))
            if "incompatible" in entry:
                problem, result = check_refused(name, path, reference, entry), "refused (other widths)"
            else:
                problem, rel = check_identical(name, path, reference)
                result = f"relative logit error {rel:.1e}"
            failures += problem is not None
            keras.backend.clear_session()  # the 32GF models are large; keep one at a time
            print(f"{'FAIL' if problem else 'ok':4} {name:14} {builder:15} {problem or result}", flush=True)
    print(f"{len(models) - failures}/{len(models)} torchvision models pass.")
    return failures


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["reference"]:
        build_references(argv[1], int(argv[2]), argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--torchvision-python", default=os.environ.get("KERAS_REGNET_TORCHVISION_PYTHON"),
        help="an interpreter with torch and torchvision (default: $KERAS_REGNET_TORCHVISION_PYTHON)",
    )
    parser.add_argument("--models", nargs="+", metavar="NAME", help="paper names to check (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.torchvision_python:
        parser.error("name an interpreter with torchvision: --torchvision-python PATH (see this script's docstring).")
    return 1 if check(args.torchvision_python, args.models, args.seed) else 0


if __name__ == "__main__":
    sys.exit(main())
