"""A test whose reference cannot be imported fails; it skips only on request.

The rule lives in tests/conftest.py (``require`` and the hooks that make
``pytest.importorskip`` strict). Here it is checked directly, and by running
pytest on a few small test files that import a module which does not exist.
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import ALLOW_MISSING, require

HERE = os.path.dirname(os.path.abspath(__file__))
MISSING = "keras_regnet_no_such_reference"

SMALL_TESTS = {
    "test_in_function.py": f"""
import pytest
from conftest import require

def test_require():
    require("{MISSING}")

def test_importorskip():
    pytest.importorskip("{MISSING}")

def test_present_reference():
    assert require("json").loads("[1]") == [1]

def test_other_skip():
    pytest.skip("a skip that is not about an import")
""",
    "test_module_require.py": f"""
from conftest import require
require("{MISSING}")

def test_never_collected():
    pass
""",
    "test_module_importorskip.py": f"""
import pytest
pytest.importorskip("{MISSING}")

def test_never_collected():
    pass
""",
}


def test_require_returns_the_module():
    assert require("json") is json


def test_require_fails_when_the_reference_is_missing(monkeypatch):
    monkeypatch.delenv(ALLOW_MISSING, raising=False)
    with pytest.raises(pytest.fail.Exception) as failed:
        require(MISSING)
    assert str(failed.value) == (
        f"cannot import the reference '{MISSING}' (ModuleNotFoundError: No module named '{MISSING}'); it is a "
        f'test dependency: pip install -e ".[test]". Set {ALLOW_MISSING}=1 to skip such tests on a partial install.'
    )


def test_only_the_value_1_turns_the_failure_into_a_skip(monkeypatch):
    monkeypatch.setenv(ALLOW_MISSING, "1")
    with pytest.raises(pytest.skip.Exception, match=rf"'{MISSING}' .*; skipped because {ALLOW_MISSING}=1$"):
        require(MISSING)
    for value in ("0", "", "true"):
        monkeypatch.setenv(ALLOW_MISSING, value)
        with pytest.raises(pytest.fail.Exception):
            require(MISSING)


def test_a_reference_that_is_installed_but_broken_is_an_error_even_when_allowed(tmp_path, monkeypatch):
    (tmp_path / "keras_regnet_broken_reference.py").write_text("raise RuntimeError('half-installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ALLOW_MISSING, "1")
    with pytest.raises(RuntimeError, match="half-installed"):
        require("keras_regnet_broken_reference")


def _outcomes(tmp_path, allow):
    """Run pytest (with tests/conftest.py as a plugin) on SMALL_TESTS: the run, {test id: outcome}."""
    tmp_path.mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this directory is the run's root; no other settings
    for name, text in SMALL_TESTS.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != ALLOW_MISSING}
    env.update(PYTHONPATH=HERE + os.pathsep + env.get("PYTHONPATH", ""), **({ALLOW_MISSING: "1"} if allow else {}))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "--continue-on-collection-errors",
         "--junitxml", str(tmp_path / "report.xml"), "-q", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    outcomes = {}
    for case in ET.parse(tmp_path / "report.xml").iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}".strip(":")
        outcomes[test_id] = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
    return proc, outcomes


def test_missing_references_fail_a_pytest_run_and_skip_only_when_allowed(tmp_path):
    strict, outcomes = _outcomes(tmp_path / "strict", allow=False)
    assert strict.returncode == 1, strict.stdout[-3000:]
    assert outcomes == {
        "test_in_function::test_require": "failure",
        "test_in_function::test_importorskip": "failure",
        "test_in_function::test_present_reference": "passed",
        "test_in_function::test_other_skip": "skipped",
        "test_module_require": "error",
        "test_module_importorskip": "error",
    }
    assert f"Set {ALLOW_MISSING}=1 to skip" in strict.stdout

    allowed, outcomes = _outcomes(tmp_path / "allowed", allow=True)
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert outcomes == {
        "test_in_function::test_require": "skipped",
        "test_in_function::test_importorskip": "skipped",
        "test_in_function::test_present_reference": "passed",
        "test_in_function::test_other_skip": "skipped",
        "test_module_require": "skipped",
        "test_module_importorskip": "skipped",
    }
    assert f"{ALLOW_MISSING}=1: 4 skip(s) for a missing reference; those proofs did not run." in allowed.stdout
