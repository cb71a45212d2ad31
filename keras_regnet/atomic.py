"""Atomic file writes: a temporary file beside the target, renamed into place.

A reader (or a run restarted after ``kill -9``) sees either the old file or
the complete new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path to write ``path``'s content to; rename on success.

    ``suffix`` keeps extensions that writers insist on (``.weights.h5``,
    ``.keras``, ``.png``).  On an exception the temporary file is removed and
    ``path`` is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix or ".part", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
    return path
