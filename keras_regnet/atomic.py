"""Atomic writes: a temporary file (or directory) beside the target, renamed into place.

A reader (or a run restarted after ``kill -9``) sees either the old file or
the complete new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile

# Room left beside a file being written, on top of its own size.
FREE_SPACE_MARGIN = 1 << 20


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "", nbytes: int = 0):
    """Yield a temporary path to write ``path``'s content to; rename on success.

    ``suffix`` keeps extensions that writers insist on (``.weights.h5``,
    ``.keras``, ``.png``).  ``nbytes``: the expected size, checked against the
    free space first (:func:`check_free_space`).  On an exception the
    temporary file is removed and ``path`` is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if nbytes:
        check_free_space(path, nbytes)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix or ".part", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool):
    """Yield a temporary directory beside ``path``; on success it becomes ``path``.

    The directory twin of :func:`atomic_path`.  The temporary name starts
    with a dot and is not a number, so TF Serving, which loads numeric version
    directories only, never sees a partial export.  An existing ``path`` is
    replaced only with ``overwrite``.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a server running as another user must read it
        if os.path.exists(path):
            if not overwrite:  # appeared while we were writing
                raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
    return path


def write_bytes(path: str, data: bytes) -> str:
    with atomic_path(path, nbytes=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def check_free_space(path: str, nbytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` if its file system has no room for ``nbytes``.

    Checked before writers that fail noisily on a full disk (HDF5 prints a
    traceback for every buffer it cannot flush); a disk that fills up during
    the write still fails, and :func:`atomic_path` still cleans up.
    """
    directory = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(directory).free
    if free < nbytes + FREE_SPACE_MARGIN:
        raise OSError(
            errno.ENOSPC, f"No space left on device (writing needs about {nbytes:,} bytes, {free:,} are free)", path
        )
