"""The API reference (tools/build_api_reference.py, pdoc) builds from the docstrings, and refuses broken ones."""

import html
import importlib.util
import inspect
import re
import textwrap
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("build_api_reference", ROOT / "tools" / "build_api_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()


def words(markup: str) -> str:
    """Text of HTML: tags dropped, entities decoded, typographic quotes plain, whitespace collapsed."""
    text = html.unescape(re.sub(r"<[^>]+>", "", markup)).replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.split())


def page_text(path: Path) -> str:
    """The rendered docstrings of a page (not its source listings)."""
    return " ".join(words(m) for m in re.findall(r'<div class="docstring">(.*?)</div>', path.read_text(), re.S))


def first_line(obj) -> str:
    """The first line of ``obj``'s docstring as it reads rendered (``code`` markup dropped)."""
    return inspect.getdoc(obj).splitlines()[0].replace("``", "")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    require("pdoc")
    out = tmp_path_factory.mktemp("api")
    index = tool.build(out)
    assert index == out / "index.html" and index.is_file()
    return out


def test_every_public_module_has_a_page(reference):
    modules = tool.public_modules()
    assert {"keras_regnet", "keras_regnet.architecture.models", "keras_regnet.weights.resolve", "keras_regnet.data",
            "keras_regnet.training", "keras_regnet.evaluation", "keras_regnet.export", "keras_regnet.cli"} <= set(modules)
    # The aliases kept for old imports are documented under their new names only.
    assert not {"keras_regnet.datasets", "keras_regnet.download", "keras_regnet.torch_checkpoint"} & set(modules)
    missing = [m for m in modules if not (reference / (m.replace(".", "/") + ".html")).is_file()]
    assert not missing, missing
    index = (reference / "index.html").read_text()
    unlinked = [m for m in modules if f'href="{m.replace(".", "/")}.html"' not in index]
    assert not unlinked, f"modules the index does not link: {unlinked}"


def test_pages_carry_the_docstrings(reference):
    import keras_regnet
    import keras_regnet.data
    from keras_regnet.training import Recipe, train

    top = page_text(reference / "keras_regnet.html")
    assert first_line(keras_regnet).strip(":") in top
    models = page_text(reference / "keras_regnet" / "architecture" / "models.html")
    for obj in (keras_regnet.RegNet, keras_regnet.get_model, keras_regnet.RegNetY800MF, keras_regnet.RegNetX200MF):
        assert first_line(obj) in models, obj.__name__
    assert "include_top" in models and "classifier_activation" in models  # the builders' documented arguments
    training = page_text(reference / "keras_regnet" / "training.html")
    assert first_line(Recipe) in training and first_line(train) in training
    assert "time_budget_s" in training or "time_budget_s" in page_text(reference / "keras_regnet" / "training" / "loop.html")
    data = page_text(reference / "keras_regnet" / "data.html")
    assert first_line(keras_regnet.data) in data
    assert 'id="RegNet"' in (reference / "keras_regnet" / "architecture" / "models.html").read_text()


def write_package(root: Path, name: str, files: dict) -> None:
    package = root / name
    package.mkdir()
    for file, text in files.items():
        (package / file).write_text(textwrap.dedent(text))


def test_a_module_that_does_not_import_fails_the_build(tmp_path, monkeypatch):
    require("pdoc")
    write_package(tmp_path, "brokenimport", {
        "__init__.py": '"""A package."""\n',
        "good.py": '"""Fine."""\n',
        "bad.py": '"""Imports what is not there."""\nimport no_such_module_xyz  # noqa: F401\n',
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(tool.ApiReferenceError, match=r"^brokenimport\.bad: does not import \(ModuleNotFoundError: .*no_such_module_xyz"):
        tool.build(tmp_path / "out", package="brokenimport")
    assert not (tmp_path / "out").exists()


def test_broken_docstrings_fail_the_build_naming_each_problem(tmp_path, monkeypatch, capsys):
    require("pdoc")
    write_package(tmp_path, "brokendocs", {
        "__init__.py": '"""A package."""\n',
        "api.py": '''\
            """Uses :func:`helper` and :class:`brokendocs.api.Missing`."""

            __all__ = ["helper", "undocumented"]


            def helper(size, *, name=None):
                """Resize.

                Args:
                    size: pixels.
                    colour: not a parameter.
                    name: the layer name.
                """


            def undocumented():
                pass
            ''',
        "nodoc.py": "X = 1\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(tool.ApiReferenceError) as error:
        tool.build(tmp_path / "out", package="brokendocs")
    assert str(error.value).splitlines() == [
        "brokendocs.api: the docstring refers to 'brokendocs.api.Missing', which does not exist",
        "brokendocs.api.helper: 'Args:' lists 'colour', which is not a parameter",
        "brokendocs.api.undocumented: no docstring",
        "brokendocs.nodoc: no docstring",
    ]
    assert tool.main([str(tmp_path / "out"), "--package", "brokendocs"]) == 1
    assert "4 problem(s)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_clean_package_builds_from_the_command_line(tmp_path, monkeypatch, capsys):
    require("pdoc")
    write_package(tmp_path, "cleanpkg", {
        "__init__.py": '"""A clean package: see :func:`cleanpkg.api.area`."""\n',
        "api.py": '''\
            """Geometry."""


            def area(width, height):
                """The area of a rectangle.

                Args:
                    width, height: side lengths.
                """
                return width * height
            ''',
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    assert tool.main([str(tmp_path / "out"), "--package", "cleanpkg"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = page_text(tmp_path / "out" / "cleanpkg" / "api.html")
    assert "The area of a rectangle." in page and "side lengths." in page
