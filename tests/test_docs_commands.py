"""The commands and Python code shown in README.md and docs/*.md run.

What is collected, from every Markdown file (``markdown-it-py`` parses them):

* every command of a ```` ```bash ```` (``sh``, ``shell``, ``console``)
  block: ``\\``-continued lines joined, ``# comments`` dropped, ``a && b``
  split into two commands, a here-document's body treated as its input;
* every line starting with ``keras-regnet `` in any other code block
  (indented blocks included), and every inline ```keras-regnet ...``` span;
* every ```` ```python ```` block.

Each command either runs or is listed in :data:`NOT_RUN` with the reason it
cannot run here; a command that is neither fails
:func:`test_every_command_is_run_or_listed`, so a new command in the docs
cannot go untested by accident.  Commands run as written, in a fresh
temporary directory each, except that:

* :func:`shrunk` makes them small (one epoch, a few images; the rule and its
  reason are next to each change);
* the example paths the docs use (``/data/...``, ``/path/to/...``, ``~/...``)
  point into the temporary world, where :func:`make_world` has put stand-ins
  for the files the docs name (a pycls checkpoint of random weights, a
  tf-keras ``.h5`` file, saved ``.keras`` models, image folders, a small
  CIFAR-10 ``.npz``, ``cat.jpg``);
* no network: in every process :func:`enter_docs_world` (started by a
  ``sitecustomize`` module on ``PYTHONPATH``) replaces TensorFlow Datasets
  with its mock data (``tfds.testing.mock_data``, with written split
  metadata, so ``--data imagenet2012`` trains and evaluates on 16 random
  images) and stands in for an earlier download of the ImageNet weights: the
  converted-weights cache entry that ``weights="imagenet[:SOURCE]"`` reads
  before it would download is written first, with random weights and the
  source's trusted hash, so the real cache path of
  :mod:`keras_regnet.weights.resolve` loads it.  The download itself is
  tested in ``tests/test_imagenet_weights.py`` and ``tests/test_downloads.py``.

The README's commands run through the real ``keras-regnet`` console script,
one process each; the other docs' ``keras-regnet`` commands run through
:func:`keras_regnet.cli.main` in one process (a process start costs about
7 s), and ``python SCRIPT`` commands as processes from the repository root.
A command passes when it exits with 0 and leaves the outputs it names
(:func:`expected_outputs`).  Python blocks of one page run in order in one
namespace (a page's later blocks use the files its earlier ones wrote); an
expression whose comment shows a Python literal
(``cfg.stage_depths  # (1, 1, 4, 7)``) must equal it.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import dataclasses
import importlib.abc
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
import tokenize
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
WORLD_VARIABLE = "KERAS_REGNET_DOCS_WORLD"
MOCK_EXAMPLES = 16  # images per split of every mocked TensorFlow Datasets dataset
STAND_IN_SHA256 = "d0c5" * 16  # "converted from" hash of stand-in cache entries of sources without a published one
PROCESS_TIMEOUT_S = 900
ENTERED = []  # context managers entered for the life of a process (enter_docs_world)

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Commands that cannot run here, by regular expression (re.fullmatch on the
# command as shlex.join writes it), with the reason.
NOT_RUN = {
    r"pip install .*": "installs packages from PyPI (network); this test runs against the installed package",
    r"python -m pytest( .*)?": "the whole test suite, this file included; .ci/run runs it",
    r"docker run .*": "needs Docker and the tensorflow/serving image",
    r"curl .*localhost:8501.*": "needs the TF Serving server the docker command starts",
    r"export KERAS_REGNET_WEIGHTS_MIRROR=.*": (
        "points downloads at an example host; tests/test_finetune.py downloads through a mirror on 127.0.0.1"
    ),
    r"tensorflow_model_server .*": (
        "TF Serving's model server is not installable here (not on PyPI or Debian, no Docker); "
        "tests/test_serving_rest.py makes the REST round trip against tests/tf_serving_rest.py"
    ),
    r"keras-regnet space analyze .*": (
        "reads the results files of a sweep run before it (each doc command runs in a fresh folder); "
        "tests/test_cli_space.py::test_analyze_writes_edfs_ks_and_good_ranges runs it on sweep results files"
    ),
    r"python benchmarks/.*": "a benchmark: many minutes of CPU time, run by hand to reproduce docs/benchmarks.md",
    r"keras-regnet (evaluate|export)": "names the subcommand in prose (its commands are shown in full in the same page)",
    r"KERAS_BACKEND=jax keras-regnet train .*--strategy data_parallel.*": (
        "needs several JAX devices; tests/test_distribution_exact.py runs train(strategy='data_parallel') on 2 host devices"
    ),
    r"'?TF_CONFIG=.* keras-regnet train .*--strategy multiworker.*": (
        "needs the other machines named in TF_CONFIG; tests/test_multiworker.py runs the CLI on two local workers"
    ),
    r"TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 keras-regnet train .*--epochs 100 .*": (
        "docs/results.md's 100-epoch runs (about 30 minutes each here); tests/test_recipe_parity.py proves the "
        "same recipe step for step and tests/test_pycls_reference_driver.py runs the pycls side shrunk"
    ),
}

# Python blocks that cannot run here: (doc, a text the block contains) -> reason.
PY_NOT_RUN = {
    ("docs/serving.md", "localhost:8501/v1/models/regnet:predict"): (
        "needs a running TF Serving model server; tests/test_serving_rest.py sends the same request with urllib "
        "to the emulator of its REST API"
    ),
    ("docs/transfer_learning.md", "load_cifar10_jpeg_npz("): (
        "trains RegNetY-800MF for 2 x 3 epochs on 45,000 CIFAR-10 images at 128 px (hours on 2 CPU cores); the "
        "same code is examples/transfer_learning_cifar10.py, which the page's command runs here (shrunk) and "
        "tests/test_transfer_learning_example.py checks"
    ),
}


# ------------------------------------------------------------------ extraction


@dataclasses.dataclass(frozen=True)
class Command:
    """A command shown in a doc: where, and its words as the shell would split them."""

    doc: str
    line: int
    argv: tuple

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


@dataclasses.dataclass(frozen=True)
class PythonBlock:
    doc: str
    line: int  # of the block's first line of code
    code: str


def shell_commands(content: str, doc: str, first_line: int) -> list:
    """The commands of a shell block's text (its first line is ``first_line`` of ``doc``)."""
    lines, commands, i = content.splitlines(), [], 0
    while i < len(lines):
        start, logical = first_line + i, lines[i]
        while logical.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical.rstrip()[:-1] + " " + lines[i]
        i += 1
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", logical)
        if heredoc:  # the body is the command's input, not commands
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                i += 1
            i += 1
            logical = logical[: heredoc.start()]
        words = shlex.split(logical, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            commands.append(Command(doc, start, tuple(words[:cut])))
            words = words[cut + 1 :]
    return commands


def keras_regnet_lines(content: str, doc: str, first_line: int) -> list:
    """``keras-regnet ...`` lines of a non-shell code block."""
    commands = []
    for i, line in enumerate(content.splitlines()):
        if line.strip().startswith("keras-regnet "):
            commands += shell_commands(line.strip(), doc, first_line + i)
    return commands


def extract(text: str, doc: str):
    """``(commands, python_blocks)`` shown in the Markdown ``text`` of ``doc``."""
    commands, blocks = [], []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type == "fence":
            language = (token.info.split() or [""])[0].lower()
            first = token.map[0] + 2  # the line after the opening fence, 1-based
            if language in SHELL_LANGUAGES:
                commands += shell_commands(token.content, doc, first)
            elif language == "python":
                blocks.append(PythonBlock(doc, first, token.content))
            else:
                commands += keras_regnet_lines(token.content, doc, first)
        elif token.type == "code_block":
            commands += keras_regnet_lines(token.content, doc, token.map[0] + 1)
        elif token.type == "inline":
            for child in token.children or ():
                if child.type == "code_inline" and re.match(r"keras-regnet [a-z]", child.content):
                    commands += shell_commands(child.content, doc, token.map[0] + 1)
    return commands, blocks


def all_docs():
    commands, blocks = [], []
    for path in DOC_FILES:
        found = extract(path.read_text(), str(path.relative_to(ROOT)))
        commands += found[0]
        blocks += found[1]
    return commands, blocks


def not_run_reason(command: Command):
    return next((why for pattern, why in NOT_RUN.items() if re.fullmatch(pattern, command.text)), None)


def py_not_run_reason(block: PythonBlock):
    return next((why for (doc, text), why in PY_NOT_RUN.items() if block.doc == doc and text in block.code), None)


def runner_of(command: Command):
    """How a runnable command is run: ``console`` (README), ``cli`` (in-process batch), ``script``; else None."""
    if command.argv[0] == "keras-regnet":
        return "console" if command.doc == "README.md" else "cli"
    if command.argv[0] in ("python", "python3") and len(command.argv) > 1 and command.argv[1].endswith(".py"):
        return "script"
    return None


COMMANDS, BLOCKS = all_docs()


def unique_runnable():
    """One entry per distinct runnable command text, first occurrence first (README before docs/)."""
    seen = {}
    for command in COMMANDS:
        if not_run_reason(command) is None and runner_of(command) is not None:
            seen.setdefault(command.text, command)
    return list(seen.values())


RUNNABLE = unique_runnable()
RUNNABLE_BLOCKS = [b for b in BLOCKS if py_not_run_reason(b) is None]


# ------------------------------------------------------------------ shrinking


def set_option(argv: list, option: str, value=None) -> list:
    """``argv`` with ``option`` set to ``value`` (replaced if present, else appended); a flag if value is None."""
    argv = list(argv)
    if option in argv:
        i = argv.index(option)
        if value is not None:
            argv[i + 1] = value
        return argv
    return argv + ([option] if value is None else [option, value])


def option(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def shrunk(argv) -> list:
    """A doc command made small enough for a test, with the reason for each change."""
    argv = list(argv)
    if argv[:2] == ["keras-regnet", "train"]:
        argv = set_option(argv, "--epochs", "1")  # one epoch proves the run; the docs' counts are for real runs
        if "--freeze-epochs" in argv:  # one epoch in each phase
            argv = set_option(set_option(argv, "--epochs", "2"), "--freeze-epochs", "1")
        if option(argv, "--data", "embedded") != "embedded":
            # pycls's batch sizes (up to 1024) exceed the stand-in data (16 mocked images, 100 .npz ones).
            argv = set_option(argv, "--batch-size", "16")
        if option(argv, "--data", "").endswith(".npz"):
            # .npz validation is always 5,000 images: at 32 px instead of 224, in batches of 100,
            # that is seconds, not minutes (and the stand-in's 100 training images are one step).
            argv = set_option(argv, "--image-size", "32")
            argv = set_option(argv, "--batch-size", "100")
    elif argv[:2] == ["keras-regnet", "evaluate"]:
        argv = set_option(argv, "--limit", "8")  # a quick check; the docs' runs read whole splits
        argv = set_option(argv, "--batch-size", "8")
        if "--all" in argv:
            argv = set_option(argv, "--models", "RegNetX-200MF")  # one model stands for the 24
    elif argv[:3] == ["keras-regnet", "space", "sweep"]:
        # One tiny network per space for one epoch on one worker proves the sweep; the docs' sizes take an hour.
        for name, value in [("--n", "1"), ("--epochs", "1"), ("--train-images", "64"), ("--validation-images", "32"),
                            ("--batch-size", "32"), ("--workers", "1")]:
            argv = set_option(argv, name, value)
        argv.append("--no-progress")
    elif argv[:2] == ["keras-regnet", "zoo"] and "--build" in argv:
        argv.remove("--build")  # builds all 24 models (up to 145 M parameters): minutes; the table is the same
    elif argv[:1] in (["python"], ["python3"]) and argv[1].endswith("transfer_learning_cifar10.py"):
        # A few images for one epoch per phase, at CIFAR's own 32 px (the docs' 128 px is for accuracy).
        for name, value in [("--train-images", "64"), ("--val-images", "32"), ("--head-epochs", "1"),
                            ("--finetune-epochs", "1"), ("--batch", "32"), ("--size", "32"), ("--verbose", "2")]:
            argv = set_option(argv, name, value)
    return argv


def localised_code(code: str, world: Path) -> str:
    """Python code with the docs' example locations (``"/data/X"``, ``"/path/to/X"`` strings) inside ``world``."""
    return re.sub(r"""(['"])/(data|path/to)/""", lambda m: f"{m.group(1)}{world}/{m.group(2)}/", code)


def localised(argv, world: Path) -> list:
    """The docs' example locations inside ``world``: ``/data/X``, ``/path/to/X`` and ``~/X``."""
    out = []
    for word in argv:
        if word.startswith(("/data/", "/path/to/")):
            word = str(world / word.lstrip("/"))
        elif word.startswith("~/"):
            word = str(world / "home" / word[2:])
        out.append(word)
    return out


def expected_outputs(argv) -> list:
    """The files and directories a ``keras-regnet`` command says it writes (relative to its directory)."""
    sub = argv[1] if len(argv) > 1 else ""
    if sub == "train":
        out = option(argv, "--output-dir", "runs/regnet")
        return [f"{out}/{name}" for name in ("best.keras", "last.keras", "log.csv", "curves.png", "results.json")]
    if sub == "evaluate":
        out = option(argv, "--output-dir", "evaluation")
        page = [option(argv, "--zoo-page", "docs/model_zoo.md")] if "--all" in argv else []
        return [f"{out}/evaluation.json", f"{out}/evaluation.md", *page]
    if sub == "export":
        return [option(argv, "--output")]
    if sub == "convert":
        return [argv[3]]
    if sub == "plot":
        return [option(argv, "--out", "regnet_widths.png")]
    if sub == "zoo" and "--markdown" in argv:
        return [option(argv, "--markdown")]
    if sub == "space":
        return space_outputs(argv)
    return []


def space_outputs(argv) -> list:
    """What ``keras-regnet space ...`` writes: the sweep's results files, a sample's or fit's file."""
    action = argv[2]
    if action == "sweep":
        words = argv[3:]
        spaces = words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))]
        return [f"{option(argv, '--out')}/{space}.json" for space in spaces]
    if action == "sample" and "--output" in argv:
        return [option(argv, "--output")]
    if action == "fit" and "--plot" in argv:
        return [option(argv, "--plot")]
    return []


# ------------------------------------------------------------------ the world


def make_world(world: Path) -> None:
    """Stand-ins for every file and folder the docs name, and the offline set-up of the processes."""
    from conftest import require

    files = world / "files"
    files.mkdir(parents=True)
    write_checkpoints(files, require("pycls_reference"), require("tf_keras"))
    write_models(files)
    write_images(world, files)
    write_cifar_npz(world / "cwd" / "shared" / "data" / "cifar10_train_jpeg.npz")
    write_tfds_metadata(world / "tfds_metadata")
    (world / "home" / "imagenet").mkdir(parents=True)  # ~/imagenet: the manual_dir; the mock replaces the archives
    (world / "path" / "to").mkdir(parents=True)
    os.symlink(files / "RegNetY-800MF_dds_8gpu.pyth", world / "path" / "to" / "RegNetY-800MF_dds_8gpu.pyth")
    (world / "site").mkdir()
    (world / "site" / "sitecustomize.py").write_text(
        "import os\n\n"
        f"if os.environ.get({WORLD_VARIABLE!r}):\n"
        "    import test_docs_commands\n\n"
        f"    test_docs_commands.enter_docs_world(os.environ[{WORLD_VARIABLE!r}])\n"
    )


def write_checkpoints(files: Path, pr, tf_keras) -> None:
    """The pycls checkpoint and the tf-keras weights file the docs convert and load (random values)."""
    import keras_regnet

    torch_model = pr.pycls_model(keras_regnet.published_models()["RegNetY-800MF"].config, seed=3)
    pr.torch.save({"epoch": 100, "model_state": torch_model.state_dict()}, files / "RegNetY-800MF_dds_8gpu.pyth")
    tf_keras.applications.RegNetY008(weights=None).save_weights(str(files / "regnety008.h5"))


def write_models(files: Path) -> None:
    """``runs/regnet/best.keras`` as ``keras-regnet train`` writes it on the embedded data, and a fine-tuned model."""
    import keras

    import keras_regnet

    small = dataclasses.replace(keras_regnet.published_models()["RegNetX-200MF"].config, stem_stride=1)
    (files / "runs" / "regnet").mkdir(parents=True)
    trained = keras_regnet.RegNet(small, input_shape=(32, 32, 3), classes=10, name="regnetx200mf")
    trained.model_info = dataclasses.replace(  # what keras-regnet train records
        trained.model_info, weights="trained", dataset="embedded", class_names=tuple(CIFAR_CLASSES), image_size=32,
        eval_transform="center_crop", validation={"epoch": 15, "top1_err": 51.4, "top5_err": 8.0, "num_images": 1000},
    )
    trained.save(files / "runs" / "regnet" / "best.keras")
    keras_regnet.RegNetX200MF(classes=10).save(files / "my_finetuned.keras")
    keras.backend.clear_session()


def write_jpeg(path: Path, size=(40, 48), seed=0) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


def write_images(world: Path, files: Path) -> None:
    """``cat.jpg`` and the image folders of the docs' examples (a few images each)."""
    write_jpeg(files / "cat.jpg", (300, 400))
    for split in ("train", "val"):  # /data/flowers: DIR/train/<class>/..., DIR/val/<class>/...
        for c, name in enumerate(("daisy", "tulip")):
            for i in range(8 if split == "train" else 2):
                write_jpeg(world / "data" / "flowers" / split / name / f"{i}.jpg", seed=100 * c + i)
    for c, wnid in enumerate(("n01440764", "n01443537")):  # ImageNet ids: a subset of the classes works
        write_jpeg(world / "data" / "imagenet" / "val" / wnid / "0.jpg", (300, 260), seed=c)
    for c, name in enumerate(CIFAR_CLASSES[:3]):  # /data/cifar10_val: some of the trained model's classes, by name
        write_jpeg(world / "data" / "cifar10_val" / name / "0.jpg", (32, 32), seed=c)
    for c in range(10):  # as many class folders as the 10-class model has classes
        write_jpeg(world / "data" / "my_val_folders" / f"class{c}" / "0.jpg", seed=c)


def write_cifar_npz(path: Path) -> None:
    """A CIFAR-10 JPEG ``.npz`` in the full file's layout: 5,100 images (its validation split is 5,000)."""
    from importlib import resources

    import numpy as np

    with resources.as_file(resources.files("keras_regnet.data").joinpath("cifar10_subset.npz")) as subset:
        with np.load(subset, allow_pickle=False) as d:
            jpeg, offsets, labels, classes = d["jpeg"], d["offsets"], d["labels"], d["classes"]
    extra = 100  # repeat the first images: the full file has 50,000
    jpeg = np.concatenate([jpeg, jpeg[: offsets[extra]]])
    offsets = np.concatenate([offsets, offsets[-1] + offsets[1 : extra + 1]])
    path.parent.mkdir(parents=True)
    np.savez(path, train_jpeg=jpeg, train_offsets=offsets, train_labels=np.concatenate([labels, labels[:extra]]),
             classes=classes)


def write_tfds_metadata(data_dir: Path) -> None:
    """imagenet2012's dataset info with 16-image splits, so the mock data has split sizes to train with."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("imagenet2012", data_dir=str(data_dir))
    splits = [tfds.core.SplitInfo(name=s, shard_lengths=[MOCK_EXAMPLES], num_bytes=0) for s in ("train", "validation")]
    builder.info.set_splits(tfds.core.SplitDict(splits))
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)


def command_directory(world: Path, name: str, mentions: str) -> Path:
    """A fresh directory for a command (or a page's blocks) holding the stand-ins ``mentions`` names."""
    cwd = world / "cwd" / name
    cwd.mkdir(parents=True)
    files = world / "files"
    for path in sorted(files.rglob("*")):
        relative = path.relative_to(files).as_posix()
        if path.is_file() and relative in mentions:
            (cwd / relative).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, cwd / relative)
    for name in ("MANUAL_DIR", "DIR"):  # tfds manual_dir placeholders; the mock replaces the archives
        if name in mentions:
            (cwd / name).mkdir()
    return cwd


# ------------------------------------------------------------------ inside the processes


class AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback(module)`` once the module ``name`` has been imported (by whoever imports it)."""

    def __init__(self, name: str, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        exec_module = spec.loader.exec_module

        def exec_then_call(module):
            exec_module(module)
            self.callback(module)

        spec.loader.exec_module = exec_then_call
        return spec


def enter_docs_world(world: str) -> None:
    """Offline stand-ins for this process (called by the world's ``sitecustomize``).

    Applied when the command itself imports TensorFlow Datasets or the
    weights resolver, so a command starts as it would anywhere else.
    """

    def mock_tfds(tfds):
        mock = tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=os.path.join(world, "tfds_metadata"))
        mock.__enter__()
        ENTERED.append(mock)  # kept for the life of the process: a collected context manager would exit

    def stand_in_for_downloads(resolve):
        real_load = resolve.load

        def load(model, spec, *args, **kwargs):
            if spec.kind == resolve.IMAGENET:
                write_cache_entry(model, spec)
            return real_load(model, spec, *args, **kwargs)

        resolve.load = load

    sys.meta_path.insert(0, AfterImport("tensorflow_datasets", mock_tfds))
    sys.meta_path.insert(0, AfterImport("keras_regnet.weights.resolve", stand_in_for_downloads))


def write_cache_entry(model, spec) -> None:
    """What an earlier ``weights="imagenet[:SOURCE]"`` call would have cached, with ``model``'s random weights."""
    from keras_regnet.architecture.zoo import function_name
    from keras_regnet.weights import download, resolve

    entry = resolve.manifest()[spec.model_name][spec.source]
    top = any(layer.name == "predictions" for layer in model.layers)
    trusted = entry["sha256" + ("" if top or "url_notop" not in entry else "_notop")]
    name = f"{function_name(spec.model_name)}_{spec.source}{'' if top else '_notop'}.weights.h5"
    path = os.path.join(download.cache_dir(), name)
    if not os.path.exists(path):
        resolve.save_weights_atomic(model, path, source=spec.source, source_sha256=trusted or STAND_IN_SHA256)


def run_cli_jobs(jobs_file: str) -> None:
    """Run ``keras_regnet.cli.main`` for each job of ``jobs_file``; write each result as JSON next to it."""
    import keras

    from keras_regnet.cli import main

    for job in json.loads(Path(jobs_file).read_text()):
        os.chdir(job["cwd"])
        output, start = io.StringIO(), time.monotonic()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                status = main(job["argv"][1:])
            except SystemExit as e:  # argparse
                status = e.code if isinstance(e.code, int) else 1
            except Exception:  # noqa: BLE001 - reported as the command's failure
                traceback.print_exc()
                status = "exception"
        keras.backend.clear_session()
        keras.config.set_dtype_policy("float32")  # --mixed-precision sets the global policy
        result = {"status": status, "output": output.getvalue(), "seconds": time.monotonic() - start}
        Path(job["result"]).write_text(json.dumps(result))


def expression_expectations(code: str) -> dict:
    """``{line: literal}`` for lines whose comment (same line, or the next line alone) is a Python literal."""
    comments, code_lines = {}, set()
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string[1:].strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    expected = {}
    for line in code_lines:
        text = comments.get(line) or (comments.get(line + 1) if line + 1 not in code_lines else None)
        try:
            value = ast.literal_eval(text) if text else None
        except (ValueError, SyntaxError):
            continue
        if value is not None and "..." not in text:
            expected[line] = value
    return expected


def run_block(block: dict, namespace: dict) -> dict:
    """Run one block statement by statement; check expressions against the literals their comments show."""
    tree = ast.parse(block["code"])
    ast.increment_lineno(tree, block["line"] - 1)  # tracebacks give the doc's line numbers
    expected = {block["line"] - 1 + n: value for n, value in expression_expectations(block["code"]).items()}
    try:
        for statement in tree.body:
            if isinstance(statement, ast.Expr) and statement.end_lineno in expected:
                value = eval(compile(ast.Expression(statement.value), block["doc"], "eval"), namespace)
                want = expected[statement.end_lineno]
                if value != want:
                    where = f"{block['doc']}:{statement.end_lineno}"
                    return {"ok": False, "output": f"{where}: got {value!r}, the doc shows {want!r}"}
            else:
                exec(compile(ast.Module([statement], []), block["doc"], "exec"), namespace)
    except Exception:  # noqa: BLE001 - reported as the block's failure
        return {"ok": False, "output": traceback.format_exc()}
    return {"ok": True, "output": ""}


def run_python_jobs(jobs_file: str) -> None:
    """Run each page's blocks in order in one namespace, in the page's directory; results as JSON."""
    import keras

    results = {}
    for page in json.loads(Path(jobs_file).read_text()):
        os.chdir(page["cwd"])
        namespace = {"__name__": "__main__"}
        for block in page["blocks"]:
            start = time.monotonic()
            with contextlib.redirect_stdout(io.StringIO()):
                result = run_block(block, namespace)
            results[f"{block['doc']}:{block['line']}"] = {**result, "seconds": time.monotonic() - start}
        keras.backend.clear_session()
    Path(jobs_file + ".results").write_text(json.dumps(results))


# ------------------------------------------------------------------ running everything


def process_env(world: Path) -> dict:
    env = dict(os.environ)
    env.update(
        HOME=str(world / "home"),
        KERAS_HOME=str(world / "keras_home"),
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(world / "site"), str(TESTS), env.get("PYTHONPATH", "")]),
    )
    env[WORLD_VARIABLE] = str(world)
    return env


def run_process(argv, cwd, env) -> dict:
    start = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        status, output = "timeout", f"{e.stdout or ''}{e.stderr or ''}"
    return {"status": status, "output": output, "seconds": time.monotonic() - start}


def run_console_and_scripts(world: Path, jobs: list, env: dict) -> dict:
    """README commands through the installed console script, ``python SCRIPT`` from the repository root."""
    console = shutil.which("keras-regnet", path=os.path.dirname(sys.executable) + os.pathsep + env["PATH"])
    assert console, "the keras-regnet console script is not installed (pip install -e .)"
    results = {}
    for job in jobs:
        argv = job["argv"]
        if argv[0] == "keras-regnet":
            results[job["key"]] = run_process([console, *argv[1:]], job["cwd"], env)
        else:  # the docs run scripts from the repository root
            script = str(ROOT / argv[1])
            results[job["key"]] = run_process([sys.executable, script, *argv[2:]], job["cwd"], env)
    return results


def run_cli_batch(world: Path, jobs: list, env: dict) -> dict:
    jobs_file = world / "cli_jobs.json"
    for i, job in enumerate(jobs):
        job["result"] = str(world / f"cli_result_{i}.json")
    jobs_file.write_text(json.dumps(jobs))
    code = f"import test_docs_commands as t; t.run_cli_jobs({str(jobs_file)!r})"
    process = run_process([sys.executable, "-c", code], world, env)
    results = {}
    for job in jobs:
        path = Path(job["result"])
        results[job["key"]] = json.loads(path.read_text()) if path.exists() else {**process, "status": "not run"}
    return results


def run_python_batch(world: Path, env: dict) -> dict:
    pages = {}
    for block in RUNNABLE_BLOCKS:
        pages.setdefault(block.doc, []).append({**dataclasses.asdict(block), "code": localised_code(block.code, world)})
    jobs = []
    for i, (doc, blocks) in enumerate(pages.items()):
        cwd = command_directory(world, f"python_{i}", "".join(b["code"] for b in blocks))
        jobs.append({"cwd": str(cwd), "blocks": blocks})
    jobs_file = world / "python_jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    code = f"import test_docs_commands as t; t.run_python_jobs({str(jobs_file)!r})"
    process = run_process([sys.executable, "-c", code], world, env)
    results_file = Path(str(jobs_file) + ".results")
    if results_file.exists():
        return json.loads(results_file.read_text())
    return {f"{b.doc}:{b.line}": {**process, "ok": False} for b in RUNNABLE_BLOCKS}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run every runnable command and block once; ``(world, {key: result})``."""
    world = tmp_path_factory.mktemp("docs_world")
    make_world(world)
    env = process_env(world)
    groups = {"console": [], "cli": []}
    for i, command in enumerate(RUNNABLE):
        argv = localised(shrunk(command.argv), world)
        cwd = command_directory(world, f"c{i:02d}", " ".join(argv))
        group = "console" if runner_of(command) in ("console", "script") else "cli"
        groups[group].append({"key": command.text, "argv": argv, "cwd": str(cwd)})
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(run_console_and_scripts, world, groups["console"], env),
            pool.submit(run_cli_batch, world, groups["cli"], env),
            pool.submit(run_python_batch, world, env),
        ]
        results = {}
        for future in futures:
            results.update(future.result())
    (world / "results.json").write_text(json.dumps(results, indent=1))  # for a look after a failure
    print(f"docs: ran {len(RUNNABLE)} commands and {len(RUNNABLE_BLOCKS)} Python blocks in {time.monotonic() - start:.0f} s")
    return world, results, {job["key"]: job for jobs in groups.values() for job in jobs}


# ------------------------------------------------------------------ tests


def test_extraction_of_every_shape():
    text = "\n".join([
        "Run `keras-regnet zoo --build` or `keras-regnet: error: x` (not a command).",
        "",
        "```bash",
        "# a comment",
        "pip install . && keras-regnet train   # trailing comment",
        "keras-regnet export --model A \\",
        "    --format onnx --output a.onnx",
        "curl -s http://h/x -d @- <<EOF",
        '{"not": "a command"}',
        "EOF",
        "```",
        "",
        "```",
        "keras-regnet complexity RegNetY-800MF",
        "other text",
        "```",
        "",
        "    keras-regnet plot A --out w.png   # then edit",
        "",
        "```python",
        "x = 1",
        "```",
    ])
    commands, blocks = extract(text, "d.md")
    assert [(c.line, c.argv) for c in commands] == [
        (1, ("keras-regnet", "zoo", "--build")),
        (5, ("pip", "install", ".")),
        (5, ("keras-regnet", "train")),
        (6, ("keras-regnet", "export", "--model", "A", "--format", "onnx", "--output", "a.onnx")),
        (8, ("curl", "-s", "http://h/x", "-d", "@-")),
        (14, ("keras-regnet", "complexity", "RegNetY-800MF")),
        (18, ("keras-regnet", "plot", "A", "--out", "w.png")),
    ]
    assert blocks == [PythonBlock("d.md", 21, "x = 1\n")]


def test_shrinking_and_expected_outputs():
    argv = shrunk(["keras-regnet", "train", "--data", "x.npz", "--epochs", "100", "--batch-size", "128"])
    assert argv == ["keras-regnet", "train", "--data", "x.npz", "--epochs", "1", "--batch-size", "100",
                    "--image-size", "32"]
    assert shrunk(["keras-regnet", "train"]) == ["keras-regnet", "train", "--epochs", "1"]
    assert shrunk(["keras-regnet", "zoo", "--build", "--markdown", "m.md"]) == ["keras-regnet", "zoo", "--markdown", "m.md"]
    assert expected_outputs(["keras-regnet", "convert", "a.pyth", "b.weights.h5", "--model", "M"]) == ["b.weights.h5"]
    assert expected_outputs(["keras-regnet", "evaluate", "--all", "--output-dir", "e"]) == [
        "e/evaluation.json", "e/evaluation.md", "docs/model_zoo.md"
    ]
    assert localised_code('w = "/path/to/a.pyth"; d = \'/data/x\'; e = "/etc/data/"', Path("/W")) == (
        'w = "/W/path/to/a.pyth"; d = \'/W/data/x\'; e = "/etc/data/"'
    )
    assert expression_expectations("a = f()\nf()  # (1, 2)\ng()\n# {'k': 3}\nh()  # [1, ..., 9]\n") == {
        2: (1, 2), 3: {"k": 3}
    }


def test_every_command_is_run_or_listed():
    assert len(COMMANDS) > 20 and len(BLOCKS) > 5, "the extractor found almost nothing: is the parsing broken?"
    unhandled = [
        f"{c.doc}:{c.line}: {c.text}" for c in COMMANDS if not_run_reason(c) is None and runner_of(c) is None
    ]
    assert not unhandled, "doc commands that neither run nor are listed in NOT_RUN with a reason:\n" + "\n".join(unhandled)
    stale = [p for p in NOT_RUN if not any(re.fullmatch(p, c.text) for c in COMMANDS)]
    assert not stale, f"NOT_RUN entries that match no doc command any more: {stale}"
    stale_blocks = [key for key in PY_NOT_RUN if not any(b.doc == key[0] and key[1] in b.code for b in BLOCKS)]
    assert not stale_blocks, f"PY_NOT_RUN entries that match no Python block any more: {stale_blocks}"
    readme = [c for c in RUNNABLE if c.doc == "README.md"]
    assert ("keras-regnet", "train") in [c.argv for c in readme], "the README's main job is not run"


@pytest.mark.parametrize("command", RUNNABLE, ids=[f"{c.doc}:{c.line}" for c in RUNNABLE])
def test_doc_command_runs(ran, command):
    world, results, jobs = ran
    result, job = results[command.text], jobs[command.text]
    where = [f"{c.doc}:{c.line}" for c in COMMANDS if c.text == command.text]
    tail = result["output"][-6000:]
    assert result["status"] == 0, f"{command.text} (shown at {where}; ran as {job['argv']}) failed:\n{tail}"
    missing = [p for p in expected_outputs(job["argv"]) if not (Path(job["cwd"]) / p).exists()]
    assert not missing, f"{command.text} did not write {missing}:\n{tail}"


@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=[f"{b.doc}:{b.line}" for b in RUNNABLE_BLOCKS])
def test_doc_python_block_runs(ran, block):
    _, results, _ = ran
    result = results[f"{block.doc}:{block.line}"]
    assert result["ok"], f"the Python block at {block.doc}:{block.line} failed:\n{result['output'][-6000:]}"
