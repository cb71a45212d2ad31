"""The one exception family for files the package refuses or finds damaged.

Every file keras_regnet reads on a user's behalf (weights, PyTorch
checkpoints, ``.keras`` models, data archives, downloads in the cache) is
checked before use.  Whatever is wrong with it, hostile content, damage or a
mismatch with the model, surfaces as :class:`InvalidFileError` (a
``ValueError``) naming the file; content that could have run code if loaded
naively is the subclass :class:`UnsafeFileError`.  No other exception type
escapes the readers.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

# The path of errors raised deep inside a reader that does not know the file;
# :func:`reading` replaces it with the real one.
PLACEHOLDER = "<file>"


class InvalidFileError(ValueError):
    """A file was refused or is damaged.

    Attributes:
        path: the file, as given.
        reason: what is wrong with it, in one sentence or two.
    """

    def __init__(self, path, reason: str):
        self.path = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsafeFileError(InvalidFileError):
    """The file asks for something that could run code (refused; nothing was run)."""


@contextlib.contextmanager
def reading(path, damaged: Optional[str] = None):
    """Turn any failure while reading ``path`` into :class:`InvalidFileError` naming it.

    ``damaged`` describes unexpected failures (``"is a damaged .npz file"``,
    followed by the exception's type and first line); without it a
    ``ValueError``'s own message is the reason.  Errors of this family raised
    with :data:`PLACEHOLDER` as their path get ``path``.
    """
    try:
        yield
    except InvalidFileError as e:
        if e.path != PLACEHOLDER:
            raise
        raise type(e)(path, e.reason) from None
    except RecursionError:
        raise InvalidFileError(path, "is nested too deeply to be read") from None
    except MemoryError:
        raise InvalidFileError(path, "declares more data than fits in memory") from None
    except Exception as e:  # noqa: BLE001 - the readers' promise: one error type for any failure
        if isinstance(e, OSError) and e.strerror:  # the OS refused: missing, a directory, no permission
            raise InvalidFileError(path, f"cannot be read ({e.strerror})") from None
        text = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
        if damaged is None and isinstance(e, ValueError):
            raise InvalidFileError(path, text) from e
        detail = f"{type(e).__name__}: {text}"
        raise InvalidFileError(path, f"{damaged} ({detail})" if damaged else detail) from e


MISSING_TENSORFLOW = (
    "Keras is set to the TensorFlow backend (its default; KERAS_BACKEND or ~/.keras/keras.json) but TensorFlow "
    'is not installed: pip install "keras-regnet[tensorflow]", or choose another backend: KERAS_BACKEND=jax '
    '(pip install "keras-regnet[jax]") or KERAS_BACKEND=torch (pip install "keras-regnet[torch]").'
)


@contextlib.contextmanager
def keras_backend_required():
    """Turn Keras's bare "No module named 'tensorflow'" into what to install or choose.

    Keras imports its backend inside ``import keras``; with the default
    backend and no TensorFlow installed that is all it says.
    """
    try:
        yield
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "tensorflow":
            raise
        raise ImportError(MISSING_TENSORFLOW) from None
