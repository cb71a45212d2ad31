"""Write the ImageNet-1k class list the package ships (a developer tool).

    python-with-torchvision tools/make_imagenet_classes.py [TFDS_IMAGENET2012_LABELS_TXT]

Class ``i`` is the ``i``-th WordNet synset in sorted order (the order pycls,
torchvision and TensorFlow Datasets' ``imagenet2012`` all use).  Synset ids
come from TensorFlow Datasets' ``imagenet2012/labels.txt``; the readable
names from torchvision's ``_IMAGENET_CATEGORIES``.  Output:
keras_regnet/architecture/imagenet_classes.json, ``[[synset, name], ...]``, so that
``decode_predictions`` and the exported serving signature work offline.
"""

import json
import os
import sys

from torchvision.models._meta import _IMAGENET_CATEGORIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(labels=None):
    if labels is None:
        import tensorflow_datasets

        labels = os.path.join(os.path.dirname(tensorflow_datasets.__file__), "datasets", "imagenet2012", "labels.txt")
    with open(labels) as f:
        synsets = f.read().split()
    assert len(synsets) == len(_IMAGENET_CATEGORIES) == 1000 and synsets == sorted(synsets)
    out = os.path.join(ROOT, "keras_regnet", "architecture", "imagenet_classes.json")
    with open(out, "w") as f:
        rows = ",\n".join(json.dumps([s, n]) for s, n in zip(synsets, _IMAGENET_CATEGORIES))
        f.write(f"[\n{rows}\n]\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
