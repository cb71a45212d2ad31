"""Atomic, checksummed downloads with a progress bar, and the cache location."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request

from keras_regnet.atomic import atomic_path

CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be fetched (network, HTTP error, truncation, checksum)."""


def cache_dir() -> str:
    """``$KERAS_HOME/models/keras_regnet`` (``~/.keras`` when KERAS_HOME is unset), created."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "models", "keras_regnet")
    os.makedirs(path, exist_ok=True)
    return path


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_problem(hexdigest: str, sha256: str | None, sha256_prefix: str | None) -> str | None:
    """Why ``hexdigest`` fails the expected checksum, or ``None`` if it passes."""
    if sha256 is not None and hexdigest != sha256.lower():
        return f"expected SHA-256 {sha256}, got {hexdigest}"
    if sha256_prefix is not None and not hexdigest.startswith(sha256_prefix.lower()):
        return f"expected a SHA-256 starting with {sha256_prefix}, got {hexdigest}"
    return None


def fetch(
    url: str,
    dest: str,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> str:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    The bytes go to a temporary file beside ``dest`` that is renamed into
    place only when complete (the ``Content-Length`` is honoured) and, if
    ``sha256`` is given, when its digest matches (``sha256_prefix``: when the
    digest starts with it, as torch.hub checks the hash in a file name).  On any failure the
    temporary file is removed and ``dest`` is left as it was.

    Raises:
        DownloadError: naming the URL and what went wrong; for network
            errors, also where to place the file by hand.
    """
    import keras

    digest = hashlib.sha256()
    with atomic_path(dest, suffix=".part") as tmp:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise DownloadError(f"Downloading {url} failed: HTTP {e.code} {e.reason}.") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(
                f"Could not download {url} ({reason}). If this machine is offline, download "
                f"the file elsewhere and place it at {dest}, then call again."
            ) from e
        with response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = keras.utils.Progbar(total, unit_name="B") if progress else None
            received = 0
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise DownloadError(f"Downloading {url} was interrupted: {e!r}.") from e
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                if bar is not None:
                    bar.update(received)
        if total is not None and received != total:
            raise DownloadError(f"Downloading {url} was truncated: got {received} of {total} bytes.")
        problem = checksum_problem(digest.hexdigest(), sha256, sha256_prefix)
        if problem:
            raise DownloadError(
                f"Checksum mismatch for {url}: {problem}. The file was not kept; it may be "
                "corrupt or replaced upstream."
            )
    return dest
