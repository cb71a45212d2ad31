"""Cut the embedded default dataset from the real CIFAR-10 training set (a developer tool).

    python tools/make_embedded_cifar10.py ../shared/data/cifar10_train_jpeg.npz

Takes the first 500 images of each class (in the source's order), keeps their
JPEG bytes unchanged, and records where each came from.  Output:
keras_regnet/data/cifar10_subset.npz (about 4.6 MB).
"""

import os
import sys

import numpy as np

PER_CLASS = 500


def main(src):
    d = np.load(src)
    labels, offsets, jpeg = d["train_labels"], d["train_offsets"], d["train_jpeg"]
    picked = np.sort(np.concatenate([np.flatnonzero(labels == c)[:PER_CLASS] for c in range(len(d["classes"]))]))
    chunks = [jpeg[offsets[i] : offsets[i + 1]] for i in picked]
    new_offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_regnet", "data", "cifar10_subset.npz")
    np.savez_compressed(
        out,
        jpeg=np.concatenate(chunks),
        offsets=new_offsets,
        labels=labels[picked],
        classes=d["classes"],
        source_index=picked,
    )
    print(f"wrote {out}: {len(picked)} images, {os.path.getsize(out) / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10_train_jpeg.npz")
