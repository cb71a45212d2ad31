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

import os


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
