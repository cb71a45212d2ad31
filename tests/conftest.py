"""Shared test set-up, and the rule that a proof cannot silently vanish.

Reference implementations (pycls, torch, tf_keras, onnxruntime, jax, ...) are
test dependencies (``pip install -e ".[test]"``). A test imports one with
``from conftest import require`` and ``require("pycls_reference")``, at module
level or inside the test; when the import fails the test **fails**, naming the
module, so a broken install cannot turn a parity proof into a green skip. For
a deliberately partial local install, ``KERAS_REGNET_ALLOW_MISSING_REFERENCES=1``
turns those failures into skips (``.ci/run`` never sets it). The same rule
applies to any ``pytest.importorskip`` left in a test: its skip is reported as
a failure unless the variable is set.
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

ALLOW_MISSING = "KERAS_REGNET_ALLOW_MISSING_REFERENCES"
# How require's and pytest.importorskip's reasons for a failed import begin.
REQUIRE_REASON = "cannot import the reference "
IMPORTORSKIP_REASON = "could not import "


def missing_references_allowed() -> bool:
    """Whether ``KERAS_REGNET_ALLOW_MISSING_REFERENCES=1`` is set (and only ``1``)."""
    return os.environ.get(ALLOW_MISSING) == "1"


def require(module_name: str):
    """Import and return ``module_name``, a reference the calling test needs.

    Fails the test (or the collection of its module, when called at module
    level) if the import raises ``ImportError``; skips it instead when
    ``KERAS_REGNET_ALLOW_MISSING_REFERENCES=1``. Any other exception raised by
    the import propagates: a module that is installed but broken is an error.
    """
    __tracebackhide__ = True  # reports point at the test that called require
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        problem = f"{REQUIRE_REASON}{module_name!r} ({type(error).__name__}: {error})"
    # Outside the except block: the report shows the reason, not a chained traceback.
    if missing_references_allowed():
        pytest.skip(f"{problem}; skipped because {ALLOW_MISSING}=1", allow_module_level=True)
    pytest.fail(
        f'{problem}; it is a test dependency: pip install -e ".[test]". '
        f"Set {ALLOW_MISSING}=1 to skip such tests on a partial install.",
        pytrace=False,
    )


def _strict_import_skip(report, excinfo) -> None:
    """Turn a ``pytest.importorskip`` skip into a failure, unless missing references are allowed."""
    if not report.skipped or excinfo is None or missing_references_allowed():
        return
    if not isinstance(excinfo.value, pytest.skip.Exception):
        return
    reason = str(excinfo.value.msg)
    if reason.startswith(IMPORTORSKIP_REASON):
        report.outcome = "failed"
        report.longrepr = f"pytest.importorskip: {reason}; use conftest.require, or set {ALLOW_MISSING}=1 to skip."


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _strict_import_skip(report, call.excinfo)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    # pytest's own implementation keeps the collection's CallInfo on the report.
    call = getattr(report, "call", None)
    _strict_import_skip(report, call.excinfo if call is not None else None)
    return report


def pytest_terminal_summary(terminalreporter):
    """Say loudly how many proofs the opt-out skipped."""
    if not missing_references_allowed():
        return
    reasons = [r.longrepr[2] for r in terminalreporter.stats.get("skipped", []) if isinstance(r.longrepr, tuple)]
    skipped = [r for r in reasons if REQUIRE_REASON in r or IMPORTORSKIP_REASON in r]
    if skipped:
        terminalreporter.write_line(
            f"{ALLOW_MISSING}=1: {len(skipped)} skip(s) for a missing reference; those proofs did not run.",
            yellow=True,
        )


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Layer-name uniquification and memory stay per-test."""
    yield
    keras.backend.clear_session()


@pytest.fixture
def server():
    """A loopback HTTP server (tests/loopback.py), closed after the test."""
    from loopback import LoopbackServer

    s = LoopbackServer()
    yield s
    s.close()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``(run directory, results)`` of one epoch of the README's main job (shared: it takes a minute)."""
    from keras_regnet.training import Recipe, train

    out = tmp_path_factory.mktemp("run")
    recipe = Recipe(epochs=1, batch_size=128, image_size=32, warmup_epochs=0, precise_bn_images=1024)
    results = train("RegNetX-200MF", data="embedded", output_dir=str(out), recipe=recipe, seed=0, verbose=0)
    return out, results
