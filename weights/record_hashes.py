"""Record the SHA-256 of the official weight files in the manifest (a maintainer tool; needs the network).

    python weights/record_hashes.py                      # every pycls checkpoint
    python weights/record_hashes.py --source pycls --models RegNetX-200MF,RegNetY-800MF

pycls publishes no checksums, so until this has been run the package trusts
a pycls file on first use: it records the hash of the first download and
checks it on every later use (docs/weights.md, "Threat model").  Once the
hashes are in ``keras_regnet/weights/manifest.json``, every user's
download is checked against them instead.  Each file is downloaded with the
package's own downloader (atomic, with the same deadlines) into a temporary
directory and deleted after hashing.  A hash that is already recorded and
differs is reported and left alone unless ``--replace``: a changed upstream
file is news, not routine.
"""

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "keras_regnet", "weights", "manifest.json")
sys.path.insert(0, ROOT)

from keras_regnet.weights import download  # noqa: E402
from keras_regnet.atomic import write_text  # noqa: E402


def sha256_of_url(url: str, directory: str) -> str:
    path = download.fetch(url, os.path.join(directory, "download"), progress=sys.stdout.isatty())
    try:
        return download.sha256_of(path)
    finally:
        os.remove(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=MANIFEST)
    parser.add_argument("--source", default="pycls", help="weights source to hash (default: pycls)")
    parser.add_argument("--models", help="comma-separated published model names (default: all)")
    parser.add_argument("--replace", action="store_true", help="overwrite recorded hashes that differ")
    args = parser.parse_args(argv)
    with open(args.manifest) as f:
        manifest = json.load(f)
    names = [m.strip() for m in args.models.split(",")] if args.models else list(manifest["models"])
    unknown = [n for n in names if n not in manifest["models"]]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(manifest['models'])}")
    changed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            entry = manifest["models"][name].get(args.source)
            if entry is None:
                continue
            for url_key in ("url", "url_notop"):
                if url_key not in entry:
                    continue
                hash_key = url_key.replace("url", "sha256")
                digest = sha256_of_url(entry[url_key], tmp)
                old = entry.get(hash_key)
                if old and old != digest and not args.replace:
                    print(f"{name} {args.source}: {entry[url_key]} has SHA-256 {digest}, manifest says {old}; kept (--replace)")
                    continue
                entry[hash_key] = digest
                entry["sha256_note"] = f"recorded by weights/record_hashes.py from {entry['url']}"
                changed += 1
                print(f"{name} {args.source} {hash_key}: {digest}")
    write_text(args.manifest, json.dumps(manifest, indent=1) + "\n")
    print(f"recorded {changed} hashes in {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
