"""Every anticipated failure of the real ``keras-regnet`` console script: one error line, non-zero exit.

Bad arguments, unknown models, missing, refused and damaged files (with
markers that hostile payloads would create), a read-only directory and a
full disk.  CI runs as root, where ``chmod`` denies nothing, so the
read-only and full-disk cases use a read-only bind mount and a 64 KiB tmpfs
made by the test; where mounting is not allowed they fall back to an
OSError injected at the rename that completes every write.
"""

import contextlib
import errno
import os
import shutil
import subprocess
import textwrap

import hostile_files as hf
import numpy as np
import pytest

SCRIPT = shutil.which("keras-regnet")


def run_cli(*args, cwd, env=None):
    assert SCRIPT, "the keras-regnet console script is not installed (pip install -e .)"
    return subprocess.run([SCRIPT, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def assert_one_error_line(proc, *fragments):
    lines = [line for line in proc.stderr.splitlines() if line.startswith("keras-regnet: error:")]
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def x200_weights(tmp_path_factory):
    import keras_regnet

    path = tmp_path_factory.mktemp("w") / "x200.weights.h5"
    keras_regnet.RegNetX200MF().save_weights(path)
    return path


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["export", "--model", "RegNetX-200MF", "--format", "gif", "--output", "out"], ["format", "gif"]),
        (["summary", "RegNetZ-1GF"], ["RegNetZ-1GF"]),
        (["convert", "missing.pyth", "out.weights.h5", "--model", "RegNetX-200MF"], ["no file at weights='missing.pyth'"]),
        (["convert", "x.pyth", "out.h5", "--model", "RegNetX-200MF"], ["dst must end in '.weights.h5'"]),
    ],
    ids=["bad argument", "unknown model", "missing file", "bad output name"],
)
def test_argument_errors(tmp_path, args, fragments):
    proc = run_cli(*args, cwd=tmp_path)
    assert_one_error_line(proc, *fragments)
    assert proc.returncode == 2


def _hostile_checkpoints(tmp_path, marker):
    payloads = hf.payloads(str(marker))
    huge = hf.benign_checkpoint()
    huge["model_state"]["stem.bn.weight"] = hf.Tensor(np.ones(4), declared_numel=10**12, size=(10**6, 10**6), stride=(10**6, 1))
    truncated = tmp_path / "truncated.pyth"
    truncated.write_bytes(hf.write_zip(tmp_path / "full.pyth", hf.benign_checkpoint()).read_bytes()[:-200])
    return {
        "zip, os.system in the state dict": hf.write_zip(tmp_path / "a.pyth", hf.main_object_positions(payloads["os.system"])["state-dict value"]),
        "legacy, subprocess in sys_info": hf.write_legacy(tmp_path / "b.pyth", hf.benign_checkpoint(), 2, {"sys_info": payloads["subprocess.Popen"]}),
        "legacy, getattr chain as a tensor's storage": hf.write_legacy(
            tmp_path / "c.pyth", hf.main_object_positions(payloads["getattr(__import__('os'), 'system')"])["tensor storage argument"], 4
        ),
        "10**12-element storage": hf.write_zip(tmp_path / "d.pyth", huge),
        "truncated": truncated,
    }


def test_convert_refuses_hostile_and_damaged_checkpoints(tmp_path):
    marker = tmp_path / "MARKER"
    for case, path in _hostile_checkpoints(tmp_path, marker).items():
        proc = run_cli("convert", path, "out.weights.h5", "--model", "RegNetX-200MF", cwd=tmp_path)
        assert_one_error_line(proc, str(path))
        assert not marker.exists(), f"{case}: the payload ran"
        assert not (tmp_path / "out.weights.h5").exists(), case


def test_evaluate_refuses_a_hostile_keras_model(tmp_path):
    from keras_regnet import RegNet, RegNetConfig

    good = tmp_path / "good.keras"
    RegNet(RegNetConfig(depth=2, w0=8, wa=8.0, wm=2.0, group_width=8, stem_width=8), input_shape=(32, 32, 3), classes=2).save(good)
    evil = hf.keras_archive(good, tmp_path / "evil.keras", edit_config=lambda c: {**c, "module": "os", "class_name": "system"})
    (tmp_path / "data" / "a").mkdir(parents=True)
    proc = run_cli("evaluate", "--model", evil, "--data", tmp_path / "data", "--image-size", "32", cwd=tmp_path)
    assert_one_error_line(proc, str(evil), "os.system")

    # A class folder holding a file that is not an image: the error names the file.
    from PIL import Image

    (tmp_path / "data" / "b").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "data" / "a" / "ok.png")
    (tmp_path / "data" / "b" / "fake.jpg").write_bytes(b"#!/bin/sh\ntouch marker\n")
    proc = run_cli("evaluate", "--model", good, "--data", tmp_path / "data", "--image-size", "32", "--batch-size", "2", cwd=tmp_path)
    assert_one_error_line(proc, "fake.jpg", "not a JPEG, PNG, GIF or BMP image")


def test_train_refuses_a_hostile_data_file(tmp_path):
    marker = tmp_path / "MARKER"
    path = hf.npz_with_object_array(tmp_path / "evil.npz", str(marker))
    proc = run_cli("train", "--data", path, "--epochs", "1", cwd=tmp_path)
    assert_one_error_line(proc, str(path), "Python objects")
    assert not marker.exists()


@contextlib.contextmanager
def unwritable_directory(tmp_path, kind):
    """(directory, env): a read-only bind mount or a 64 KiB tmpfs; else an injected OSError at the rename."""
    directory = tmp_path / kind
    directory.mkdir()
    if kind == "read-only":
        commands = [["mount", "--bind", str(directory), str(directory)], ["mount", "-o", "remount,bind,ro", str(directory)]]
        code = errno.EROFS
    else:
        commands = [["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)]]
        code = errno.ENOSPC
    mounted = 0
    for command in commands:
        if shutil.which(command[0]) and subprocess.run(command, capture_output=True).returncode == 0:
            mounted += 1
    env = dict(os.environ)
    if mounted < len(commands):
        inject = tmp_path / "inject"
        inject.mkdir()
        (inject / "sitecustomize.py").write_text(textwrap.dedent(f"""
            import os
            _replace = os.replace
            def replace(src, dst, *args, **kwargs):
                if os.path.dirname(os.path.abspath(dst)) == {str(directory)!r}:
                    raise OSError({code}, os.strerror({code}), dst)
                return _replace(src, dst, *args, **kwargs)
            os.replace = replace
        """))
        env["PYTHONPATH"] = os.pathsep.join([str(inject), env.get("PYTHONPATH", "")])
    try:
        yield directory, env
    finally:
        for _ in range(mounted):
            subprocess.run(["umount", str(directory)], capture_output=True)


@pytest.mark.parametrize("kind, message", [("read-only", os.strerror(errno.EROFS)), ("full", os.strerror(errno.ENOSPC))])
def test_unwritable_destinations(tmp_path, x200_weights, kind, message):
    with unwritable_directory(tmp_path, kind) as (directory, env):
        proc = run_cli("convert", x200_weights, directory / "out.weights.h5", "--model", "RegNetX-200MF", cwd=tmp_path, env=env)
        assert_one_error_line(proc, message, str(directory))
        assert proc.returncode == 1
        assert os.listdir(directory) == [], "a partial file was left behind"


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli("convert", "missing.pyth", "out.weights.h5", "--model", "RegNetX-200MF", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "no file at weights=" in proc.stderr


def test_unexpected_errors_say_how_to_see_more():
    from keras_regnet.cli.main import describe_error

    assert describe_error(TypeError("bad\nsecond line")) == "bad (TypeError; run again with --debug for the traceback)"
    assert describe_error(OSError(errno.ENOSPC, "No space left on device", "/x")) == "No space left on device: /x"


def test_the_error_line_is_all_of_stderr(tmp_path):
    # TensorFlow's native start-up lines are hidden, so the error is not buried under them ...
    proc = run_cli("summary", "RegNetZ-1GF", cwd=tmp_path)
    line = assert_one_error_line(proc, "RegNetZ-1GF")
    assert proc.stderr.splitlines() == [line] and proc.returncode == 2
    # ... and still the last line, with the same status, when --verbose shows them.
    proc = run_cli("--verbose", "summary", "RegNetZ-1GF", cwd=tmp_path)
    assert proc.stderr.splitlines()[-1] == line and proc.returncode == 2
