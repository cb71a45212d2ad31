"""Start Keras without TensorFlow's native start-up log lines.

TensorFlow's C++ libraries write lines such as "Could not find cuda
drivers", "oneDNN custom operations are on", "rebuild TensorFlow with the
appropriate compiler flags" and "failed call to cuInit" straight to file
descriptor 2 while they load and while the first device query runs.  Most
come before absl's logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does
not reach them.  :func:`start_keras` therefore points descriptor 2 at
``/dev/null`` for the import and the device query only, and keeps Python's
own ``sys.stderr`` on the real terminal meanwhile: Python warnings, our error
lines and tracebacks are never hidden.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

# Later native messages (device creation, XLA, warnings) are gated by this
# level; errors (2 shows errors only) stay visible.
QUIET_TF_LOG_LEVEL = "2"


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to descriptor 2 to ``/dev/null``; Python's ``sys.stderr`` keeps printing."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None without a console (pythonw)
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all: nothing to hide
        yield
        return
    python_stderr = sys.stderr
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        if _writes_to_descriptor_2(python_stderr):
            sys.stderr = io.TextIOWrapper(
                os.fdopen(os.dup(saved), "wb", buffering=0), encoding=python_stderr.encoding,
                errors="backslashreplace", line_buffering=True,
            )
        yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _writes_to_descriptor_2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a StringIO, pytest's capsys, a closed stream
        return False


def start_keras(verbose: bool = False) -> None:
    """Import Keras (and TensorFlow, when it is the backend) and query the devices, quietly unless ``verbose``.

    The device query is where TensorFlow looks for CUDA ("failed call to
    cuInit" on a machine without a GPU); it leaves devices configurable.
    """
    if verbose:
        _import_and_query_devices()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_LOG_LEVEL)
    with native_stderr_silenced():
        _import_and_query_devices()


def _import_and_query_devices() -> None:
    from keras_regnet.errors import keras_backend_required

    with keras_backend_required():
        import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices()
