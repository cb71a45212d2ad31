"""The layout rules of CONTRIBUTING.md, checked on the source.

- No function in the package is longer than ``MAX_FUNCTION_LINES`` lines of
  code (its docstring not counted): each can be read at once.
- No private name (leading underscore) crosses a module boundary: modules
  meet at public seams.  Checked for imports (``from m import _x``) and for
  attribute access on an imported module (``m._x``) in the package, the
  benchmarks, tools, examples and weights scripts.
- Nothing imports Keras's private ``keras.src`` tree.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "keras_regnet")
SCANNED = ("keras_regnet", "benchmarks", "tools", "examples", "weights")
MAX_FUNCTION_LINES = 60


def python_files(*roots):
    for root in roots:
        for directory, _, files in os.walk(root):
            yield from (os.path.join(directory, f) for f in sorted(files) if f.endswith(".py"))


def parse(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def code_lines(function) -> int:
    """Lines from the first statement after the docstring to the end."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:] or body
    return function.end_lineno - body[0].lineno + 1


def long_functions(paths, limit=MAX_FUNCTION_LINES):
    found = []
    for path in paths:
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > limit:
                found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name} ({code_lines(node)} lines)")
    return found


def imported_modules(tree):
    """Names bound to modules by ``import a.b as m`` / ``from a import b`` (keras_regnet only)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("keras_regnet"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_regnet"):
            names.update(a.asname or a.name for a in node.names if a.name[:1].islower())
    return names


def private_crossings(paths):
    found = []
    for path in paths:
        tree = parse(path)
        where = os.path.relpath(path, ROOT)
        modules = imported_modules(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_regnet"):
                found += [f"{where}:{node.lineno} imports {node.module}.{a.name}" for a in node.names if _private(a.name)]
            if isinstance(node, (ast.ImportFrom, ast.Import)):
                module = getattr(node, "module", None) or ""
                names = [module] + [a.name for a in node.names]
                if any(n == "keras.src" or n.startswith("keras.src.") for n in names):
                    found.append(f"{where}:{node.lineno} imports keras.src")
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                found.append(f"{where}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_function_in_the_package_is_too_long():
    assert long_functions(python_files(PACKAGE)) == []


def test_no_private_name_crosses_a_module_boundary():
    assert private_crossings(python_files(*(os.path.join(ROOT, d) for d in SCANNED))) == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from keras_regnet.weights.resolve import _file_source\n", "imports keras_regnet.weights.resolve._file_source"),
        ("from keras_regnet.architecture import layers\nlayers._probe = None\n", "uses layers._probe"),
        ("import keras_regnet.weights.resolve as r\nr._x()\n", "uses r._x"),
        ("from keras.src.export import tf2onnx_lib\n", "imports keras.src"),
    ],
)
def test_the_checks_find_planted_violations(tmp_path, source, expected):
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    assert any(expected in line for line in private_crossings([str(planted)]))


def test_the_length_check_counts_code_not_docstrings(tmp_path):
    docstring = '    """' + "\n".join(["doc"] * 100) + '"""\n'
    short = "def short():\n" + docstring + "    return 1\n"
    long = "def long():\n" + "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES + 1))
    (tmp_path / "f.py").write_text(short + long)
    assert [line.split()[1] for line in long_functions([str(tmp_path / "f.py")])] == ["long"]
