"""No unrestricted deserialisation in the project's code, and the scan that says so can fail.

Only ``keras_regnet/weights/torch_checkpoint.py`` may use ``pickle`` (through its
restricted unpicklers) and only ``keras_regnet/safe_io.py`` may call Keras's
``load_model`` (with ``safe_mode=True``, after its own checks).
"""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("keras_regnet", "tools", "weights", "benchmarks", "examples")
PICKLE_READER = os.path.join("keras_regnet", "weights", "torch_checkpoint.py")
KERAS_LOADER = os.path.join("keras_regnet", "safe_io.py")

FORBIDDEN_TEXT = {
    r"\bpickle\.loads?\(": "pickle.load/pickle.loads",
    r"\bpickle\.Unpickler\(": "a bare pickle.Unpickler",
    r"\btorch\.load\(": "torch.load",
    r"allow_pickle\s*=\s*True": "allow_pickle=True",
    r"safe_mode\s*=\s*False": "safe_mode=False",
    r"\byaml\.(unsafe_)?load\(": "yaml.load",
}
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "jsonpickle"}


def _violations_in(path, relative):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in FORBIDDEN_TEXT.items():
            if re.search(pattern, line) and relative != PICKLE_READER:
                found.append(f"{relative}:{number}: {what}")
    for node in ast.walk(ast.parse(text, relative)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in UNSAFE_MODULES and relative != PICKLE_READER:
                    found.append(f"{relative}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("eval", "exec") and isinstance(func, ast.Name):
                found.append(f"{relative}:{node.lineno}: calls {name}")
            if name == "load_model" and relative != KERAS_LOADER:
                found.append(f"{relative}:{node.lineno}: calls load_model outside {KERAS_LOADER}")
            if name == "load_model" and relative == KERAS_LOADER:
                safe = [k for k in node.keywords if k.arg == "safe_mode"]
                if not (safe and isinstance(safe[0].value, ast.Constant) and safe[0].value.value is True):
                    found.append(f"{relative}:{node.lineno}: load_model without safe_mode=True")
    return found


def scan(root):
    found = []
    for top in SCANNED:
        for directory, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    found += _violations_in(path, os.path.relpath(path, root))
    return found


def test_the_project_has_no_unrestricted_deserialisation():
    assert scan(ROOT) == []


def test_the_scan_finds_planted_violations(tmp_path):
    package = tmp_path / "keras_regnet"
    package.mkdir()
    (package / "planted.py").write_text(
        "import pickle\nfrom joblib import load\nimport numpy as np\nimport keras\n"
        "x = pickle.loads(b'')\nnp.load('f.npz', allow_pickle=True)\nkeras.models.load_model('m.keras', safe_mode=False)\n"
        "eval('1')\n"
    )
    (package / "safe_io.py").write_text("import keras\nkeras.saving.load_model('m.keras')\n")
    found = scan(tmp_path)
    for expected in (
        "planted.py:1: imports pickle", "planted.py:2: imports joblib", "planted.py:5: pickle.load/pickle.loads",
        "planted.py:6: allow_pickle=True", "planted.py:7: safe_mode=False", "planted.py:7: calls load_model outside",
        "planted.py:8: calls eval", "safe_io.py:2: load_model without safe_mode=True",
    ):
        assert any(expected in line for line in found), (expected, found)
