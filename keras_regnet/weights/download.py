"""Atomic, checksummed downloads with a progress bar and deadlines, the cache location, and mirrors.

Two limits keep a slow or stalled server from hanging a program:
``KERAS_REGNET_DOWNLOAD_TIMEOUT`` (seconds without any data, default 60)
and ``KERAS_REGNET_DOWNLOAD_DEADLINE`` (seconds for the whole download,
default 3600); arguments of :func:`fetch` override them.

``KERAS_REGNET_WEIGHTS_MIRROR`` (a base URL: ``https://``, ``http://`` or
``file://``) makes every weights download come from a mirror holding the
files under their own names (:func:`mirrored_url`), for air-gapped and
corporate networks.  Checksums are checked as for the original addresses.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request

from keras_regnet.atomic import atomic_path

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 60.0
DEFAULT_DEADLINE = 3600.0


class DownloadError(OSError):
    """A file could not be fetched (network, HTTP error, truncation, checksum)."""


def cache_dir() -> str:
    """``$KERAS_HOME/models/keras_regnet`` (``~/.keras`` when KERAS_HOME is unset), created."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "models", "keras_regnet")
    os.makedirs(path, exist_ok=True)
    return path


MIRROR_VARIABLE = "KERAS_REGNET_WEIGHTS_MIRROR"


def mirrored_url(url: str) -> str:
    """``url``, or the file of the same name under ``$KERAS_REGNET_WEIGHTS_MIRROR`` when that is set.

    E.g. with ``KERAS_REGNET_WEIGHTS_MIRROR=https://mirror.corp/regnet``,
    ``https://dl.fbaipublicfiles.com/pycls/dds_baselines/160905981/RegNetX-200MF_dds_8gpu.pyth``
    is fetched from ``https://mirror.corp/regnet/RegNetX-200MF_dds_8gpu.pyth``.
    """
    mirror = os.environ.get(MIRROR_VARIABLE)
    if not mirror:
        return url
    if not re.match(r"^(https?|file)://", mirror):
        raise ValueError(f"{MIRROR_VARIABLE} must be an http://, https:// or file:// base URL; got {MIRROR_VARIABLE}={mirror!r}.")
    return mirror.rstrip("/") + "/" + url.rsplit("/", 1)[-1]


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _seconds_from_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds; got {name}={text!r}.")
    return value


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
    timeout: float | None = None,
    deadline: float | None = None,
    manual_path: str | None = None,
) -> str:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    The bytes go to a temporary file beside ``dest`` that is renamed into
    place only when complete (the ``Content-Length`` is honoured) and, if
    ``sha256`` is given, when its digest matches (``sha256_prefix``: when the
    digest starts with it, as torch.hub checks the hash in a file name).  On any failure the
    temporary file is removed and ``dest`` is left as it was.

    ``timeout``: seconds without data before giving up (a stalled server);
    ``deadline``: seconds for the whole download (a server that trickles).
    ``manual_path``: where an offline user should place the file by hand
    (default ``dest``), named in the error when the network is unreachable.

    Raises:
        DownloadError: naming the URL and what went wrong; for network
            errors, also where to place the file by hand.
    """
    timeout = timeout or _seconds_from_env("KERAS_REGNET_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT)
    deadline = deadline or _seconds_from_env("KERAS_REGNET_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE)
    with atomic_path(dest, suffix=".part") as tmp:
        response = _open(url, manual_path or dest, timeout)
        with response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            received, hexdigest = _copy(response, out, url, total, timeout, deadline, progress)
        if total is not None and received != total:
            raise DownloadError(f"Downloading {url} was truncated: got {received} of {total} bytes.")
        problem = checksum_problem(hexdigest, sha256, sha256_prefix)
        if problem:
            raise DownloadError(
                f"Checksum mismatch for {url}: {problem}. The file was not kept; it may be "
                "corrupt or replaced upstream."
            )
    return dest


def _copy(response, out, url: str, total, timeout: float, deadline: float, progress: bool):
    """Copy the response body to ``out`` within the deadlines: (bytes received, SHA-256)."""
    import keras

    give_up_at = time.monotonic() + deadline
    digest = hashlib.sha256()
    bar = keras.utils.Progbar(total, unit_name="B") if progress else None
    received = 0
    while True:
        try:
            block = response.read1(CHUNK)  # returns what one receive brings: the deadline is checked often
        except TimeoutError as e:
            raise DownloadError(f"Downloading {url} stalled: no data for {timeout:g} s.") from e
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"Downloading {url} was interrupted: {e!r}.") from e
        if not block:
            return received, digest.hexdigest()
        out.write(block)
        digest.update(block)
        received += len(block)
        if bar is not None:
            bar.update(received)
        if time.monotonic() > give_up_at:
            raise DownloadError(
                f"Downloading {url} did not finish within {deadline:g} s ({received:,} bytes received); "
                "set KERAS_REGNET_DOWNLOAD_DEADLINE to allow longer."
            )


def _open(url: str, dest: str, timeout: float):
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"Downloading {url} failed: HTTP {e.code} {e.reason}.") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError):
            raise DownloadError(f"Downloading {url} failed: the server sent no response within {timeout:g} s.") from e
        raise DownloadError(
            f"Could not download {url} ({reason}). If this machine is offline, download "
            f"the file elsewhere and place it at {dest}, then call again."
        ) from e
