"""Augmentation parity with pycls 0.1.1: the same random draws give the same boxes, flips and pixels.

pycls draws with numpy's global generator.  :class:`Recorder` wraps
``np.random.uniform``, ``randint`` and ``normal`` (and ``cv2.resize`` and
pycls's ``center_crop``, to see the box pycls cut and whether it fell back)
while pycls's own transforms and loaders run, so every test knows exactly
what pycls drew:

* ``random_sized_crop``: per try ``uniform(0.08, 1)`` (area fraction),
  ``uniform(3/4, 4/3)`` (aspect), ``uniform()`` (swap coin); for the box that
  fits, ``randint(0, h - crop_h)`` and ``randint(0, w - crop_w)`` (no draw
  for a side that spans the image); after 10 misses, ``scale`` +
  ``center_crop``, no draw.
* ``horizontal_flip``: ``uniform()``, flipped below 1/2.
* ``lighting``: ``normal(0, 0.1, size=(1, 3))``.
* CIFAR ``_prepare_im``: the flip's ``uniform()``, then ``randint(0, 8)``
  twice (top, left in the padded image).

Those draws go into the package's seam, the functions each backend's random
transforms call after drawing (``inception_box`` over
:mod:`keras_regnet.data.geometry`, ``crop_resize``, ``scale_crop_box``,
``horizontal_flip``, ``pad_crop``, ``add_lighting``), on both backends'
modules.  On numpy, :class:`Replay` also stands in for the generator, so
``augment.train_image`` itself runs on pycls's draws.

What is compared: crop boxes, fallbacks, flips and CIFAR offsets exactly;
pixels on the [0, 255] scale, pycls given the float32 image its ImageNet loader
gives it, within 1.0 (1/255 of the range) where OpenCV's and our bilinear
resize differ (measured: 0 when shrinking, at most 0.004 when enlarging) and
exactly, or within float32 rounding, where nothing is resized.

Two things are not pycls's draw for draw.  Offsets: pycls's ``randint(0, n)``
never reaches the last position ``n``; ours do (uniform over all ``n + 1``),
so every pycls draw is one of ours, and the CIFAR test shows pycls never
drawing 8.  TensorFlow: its draws are stateless ops that cannot be replayed,
so its seam is fed pycls's draws directly and its draws' distribution is
``tests/test_transforms.py``'s (KS against pycls's own).
"""

import cv2
import numpy as np
import pytest
from conftest import require

from keras_regnet.architecture import preprocessing
from keras_regnet.data import augment, geometry, transforms_numpy
from keras_regnet.training import Recipe

pycls_transforms = require("pycls.datasets.transforms")
pycls_imagenet = require("pycls.datasets.imagenet")
pycls_cifar10 = require("pycls.datasets.cifar10")
pycls_cfg = require("pycls.core.config").cfg

RESIZE_TOLERANCE = 1.0  # [0, 255] scale: 1/255 of the range, where the resize libraries differ
SHAPES = [(180, 240), (240, 180), (64, 400), (400, 64), (10, 250), (12, 12), (12, 16)]
SIZE = 32


@pytest.fixture(params=["tf", "numpy"])
def t(request):
    """The transforms module of one backend."""
    if request.param == "numpy":
        return transforms_numpy
    from keras_regnet.data import transforms_tf

    return transforms_tf


class Recorder:
    """Records pycls's random draws (and its resizes and fallbacks) in call order."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("uniform", "randint", "normal"):
            monkeypatch.setattr(np.random, name, self.wrap(name, getattr(np.random, name)))
        resize, center_crop = cv2.resize, pycls_transforms.center_crop
        monkeypatch.setattr(cv2, "resize", lambda im, dsize, **kw: self.log("resize", im.shape[:2], resize(im, dsize, **kw)))
        monkeypatch.setattr(pycls_transforms, "center_crop", lambda *a: self.log("center_crop", (), center_crop(*a)))

    def log(self, name, args, value):
        self.calls.append((name, args, value))
        return value

    def wrap(self, name, function):
        return lambda *args, **kwargs: self.log(name, args + tuple(kwargs.values()), function(*args, **kwargs))

    def take(self):
        """The calls so far, forgetting them: ``(function, arguments, value)`` each."""
        calls, self.calls = self.calls, []
        return calls


def values(calls, *expected):
    """The drawn values of ``calls``, after checking they are the ``expected`` (function, arguments), in order."""
    assert [c[:2] for c in calls] == list(expected)
    return [c[2] for c in calls]


@pytest.fixture
def recorder(monkeypatch):
    return Recorder(monkeypatch)


class Replay:
    """A numpy ``Generator`` stand-in that hands out recorded draws, checking each call asks for that draw."""

    def __init__(self, *draws, children=()):
        self.draws, self.children = list(draws), list(children)

    def next(self, method, args):
        assert self.draws, f"unexpected draw {method}{args}"
        expected_method, expected_args, value = self.draws.pop(0)
        assert (method, args) == (expected_method, expected_args), (method, args, expected_args)
        return value

    def uniform(self, low=0.0, high=1.0, size=None):
        return self.next("uniform", (low, high, size))

    def integers(self, low, high=None, size=None):
        return self.next("integers", (low, high, size))

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self.next("normal", (loc, scale, size))

    def spawn(self, n):
        assert n == len(self.children)
        return self.children

    def done(self):
        return not self.draws and all(c.done() for c in self.children)


# ---------------------------------------------------------------- random-sized crop


def pycls_sized_crop(recorder, image, size, prepare=None):
    """Run pycls's random_sized_crop (or ``prepare``, a loader that starts with it).

    Returns its output, its draws per try (rows: area, aspect, swap), the box
    it cut (top, left, height, width; None when it fell back) and the draws
    ``prepare`` made after the crop.
    """
    out = prepare(image) if prepare else pycls_transforms.random_sized_crop(image, size, area_frac=0.08)
    calls = recorder.take()
    uniforms = [(args, v) for name, args, v in calls if name == "uniform"]
    tries = len(uniforms) // 3
    assert [a for a, _ in uniforms[: 3 * tries]] == [(0.08, 1.0), (3 / 4, 4 / 3), ()] * tries
    draws = np.array([v for _, v in uniforms[: 3 * tries]]).reshape(tries, 3).T  # area, aspect, swap
    fell_back = any(name == "center_crop" for name, _, _ in calls)
    offsets = [v for name, _, v in calls if name == "randint"]
    box = None
    if not fell_back:
        (crop_h, crop_w), (h, w) = calls[[c[0] for c in calls].index("resize")][1], image.shape[:2]
        y = 0 if crop_h == h else offsets.pop(0)
        x = 0 if crop_w == w else offsets.pop(0)
        box = (y, x, crop_h, crop_w)
    assert not offsets and (tries == 10 or not fell_back)
    return out, draws, box, [c for c in calls if c[0] in ("uniform", "normal")][3 * tries :]


def padded_tries(draws):
    """pycls's tries, then fitting small boxes (which must lose to pycls's first fit) up to 10."""
    filler = np.array([[0.09], [1.0], [0.75]])
    return np.concatenate([draws, np.repeat(filler, 10 - draws.shape[1], 1)], 1)


def test_sized_crop_boxes_and_fallbacks_equal_pycls(t, recorder):
    cases, kinds = [], dict(fallback=0, first=0, later=0, full_side=0, swapped=0)
    for shape in SHAPES:
        image = np.random.default_rng(shape).integers(0, 256, shape + (3,), dtype=np.uint8)
        for seed in range(60):
            np.random.seed(seed)
            out, draws, box, _ = pycls_sized_crop(recorder, image.astype(np.float32), SIZE)
            cases.append((image, out, draws, box))
            kinds["fallback" if box is None else "first" if draws.shape[1] == 1 else "later"] += 1
            kinds["full_side"] += box is not None and (box[2] == shape[0] or box[3] == shape[1])
            kinds["swapped"] += box is not None and draws[2, -1] < 0.5
    assert min(kinds.values()) >= 5, kinds  # every branch of pycls's loop is exercised
    heights, widths = (np.array([c[0].shape[i] for c in cases]) for i in (0, 1))
    tries = np.stack([padded_tries(c[2]) for c in cases], -1)  # (3, 10, cases)
    crop_h, crop_w, found = (np.asarray(v) for v in t.inception_box(heights, widths, *tries))
    np.testing.assert_array_equal(found, [c[3] is not None for c in cases])
    np.testing.assert_array_equal(np.stack([crop_h, crop_w], 1)[found], [c[3][2:] for c in cases if c[3]])
    worst = 0.0
    for image, out, _, box in cases:
        ours = t.crop_resize(image, *box, SIZE) if box else t.scale_center_crop(image, SIZE, SIZE)
        assert ours.shape == out.shape == (SIZE, SIZE, 3)
        worst = max(worst, float(np.abs(np.asarray(ours) - out).max()))
    assert worst <= RESIZE_TOLERANCE, worst


@pytest.mark.parametrize("side, crop", [(5, 2), (9, 4), (7, 4)])
def test_sized_crop_rounds_half_to_even_as_pycls(t, monkeypatch, side, crop):
    # Area 1/4 of a side x side image at aspect 1: sides of exactly side / 2 (2.5, 4.5, 3.5), which
    # Python's round (pycls) takes to the even neighbour; rounding half up would give 3 and 5.
    scripted = iter([0.25, 1.0, 0.9])
    monkeypatch.setattr(np.random, "uniform", lambda *args: next(scripted))
    image = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out, draws, box, _ = pycls_sized_crop(Recorder(monkeypatch), image.astype(np.float32), 8)
    assert box[2:] == (crop, crop)
    crop_h, crop_w, found = t.inception_box(side, side, *padded_tries(draws))
    assert (int(crop_h), int(crop_w), bool(found)) == (crop, crop, True)
    np.testing.assert_allclose(t.crop_resize(image, *box, 8), out, atol=0.05)


def test_eval_scale_and_centre_crop_geometry_equals_pycls(t):
    rng = np.random.default_rng(11)
    for short, size in [(256, 224), (183, 160), (37, 32)]:
        shapes = np.concatenate([rng.integers(size // 2, 3 * short, (150, 2)), [[short, short], [short, 3 * short], [5 * short, short], [size, size]]])
        expected = []
        for h, w in shapes:
            scaled = pycls_transforms.scale(short, np.zeros((h, w, 3), np.float32))
            rows, cols = np.meshgrid(np.arange(scaled.shape[0]), np.arange(scaled.shape[1]), indexing="ij")
            corner = pycls_transforms.center_crop(size, np.stack([rows, cols, cols], -1).astype(np.float32))[0, 0]
            expected.append((*scaled.shape[:2], corner[0], corner[1]))
        ours = np.stack([np.asarray(v) for v in t.scale_crop_box(shapes[:, 0], shapes[:, 1], short, size)], 1)
        np.testing.assert_array_equal(ours, expected)


def test_tf_seam_is_the_same_in_a_graph():
    # tf.data runs the TensorFlow transforms as a graph, where dtypes are settled at tracing.
    tf = require("tensorflow")
    from keras_regnet.data import transforms_tf as t

    image = np.random.default_rng(16).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    draws = np.random.default_rng(17).uniform(size=(3, 10)) * [[0.92], [7 / 12], [1]] + [[0.08], [0.75], [0]]

    def seam(image, draws, alpha, flip, top, left):
        shape = tf.shape(image)
        crop_h, crop_w, found = t.inception_box(shape[0], shape[1], draws[0], draws[1], draws[2])
        scaled = t.scale_center_crop(image, 40, 32)
        return (crop_h, crop_w, found, scaled, t.crop_resize(image, top, left, crop_h, crop_w, 16),
                t.pad_crop(t.horizontal_flip(image, flip), top, left), t.add_lighting(image, alpha))

    args = (image, draws, np.float32([0.1, -0.2, 0.05]), 0.25, 3, 6)
    eager = seam(*args)
    graph = tf.function(seam)(*(tf.constant(a) for a in args))
    for e, g in zip(eager, graph):
        np.testing.assert_array_equal(np.asarray(e), g.numpy())
    assert eager[3].shape == (32, 32, 3) and bool(eager[2])


# ---------------------------------------------------------------- flip, lighting, ImageNet loader


def test_horizontal_flip_equals_pycls(t, recorder):
    image = np.random.default_rng(12).integers(0, 256, (5, 7, 3)).astype(np.float32)
    flips = 0
    for seed in range(40):
        np.random.seed(seed)
        out = pycls_transforms.horizontal_flip(image, 0.5, order="HWC")
        [draw] = values(recorder.take(), ("uniform", ()))
        np.testing.assert_array_equal(t.horizontal_flip(image, draw), out)
        flips += out[0, 0, 0] != image[0, 0, 0]
    assert 5 < flips < 35


def test_lighting_equals_pycls(t, recorder):
    np.testing.assert_allclose(geometry.EIG_VALS, pycls_imagenet._EIG_VALS[0], rtol=1e-7)
    np.testing.assert_allclose(geometry.EIG_VECS, pycls_imagenet._EIG_VECS, rtol=1e-7)
    image = np.random.default_rng(13).integers(0, 256, (4, 6, 3)).astype(np.float32)  # RGB
    for seed in range(20):
        np.random.seed(seed)
        chw_bgr = image[..., ::-1].transpose(2, 0, 1) / 255.0
        out = pycls_transforms.lighting(chw_bgr, 0.1, pycls_imagenet._EIG_VALS, pycls_imagenet._EIG_VECS)
        [alpha] = values(recorder.take(), ("normal", (0, 0.1, (1, 3))))
        ours = np.asarray(t.add_lighting(image, alpha[0]))
        np.testing.assert_allclose(ours, 255.0 * out[::-1].transpose(1, 2, 0), atol=2e-3)  # float32 rounding
        assert np.abs(ours - image).max() > 0.01


def imagenet_loader(size):
    """pycls's ImageNet training ``_prepare_im`` at ``cfg.TRAIN.IM_SIZE = size``."""
    loader = object.__new__(pycls_imagenet.ImageNet)
    loader._split = "train"
    return loader._prepare_im


def to_pycls_imagenet(ours):
    """Our HWC RGB [0, 255] output as pycls's loader ends: CHW BGR, [0, 1], pycls's own colour normalisation."""
    chw_bgr = np.ascontiguousarray(np.asarray(ours, np.float64)[..., ::-1].transpose(2, 0, 1)) / 255.0
    return pycls_transforms.color_norm(chw_bgr, pycls_imagenet._MEAN, pycls_imagenet._SD)


def test_imagenet_training_image_equals_pycls_loader(t, recorder, monkeypatch):
    monkeypatch.setitem(pycls_cfg.TRAIN, "IM_SIZE", SIZE)
    recipe, prepare = Recipe(image_size=SIZE, pca_lighting=0.1), imagenet_loader(SIZE)
    sd = np.array(pycls_imagenet._SD)[:, None, None]
    for shape in [(48, 60), (60, 48), (20, 200)]:
        image = np.random.default_rng(shape).integers(0, 256, shape + (3,), dtype=np.uint8)  # RGB
        for seed in range(12):
            np.random.seed(seed)
            out, draws, box, rest = pycls_sized_crop(recorder, image[..., ::-1].astype(np.float32), SIZE, prepare)
            flip, alpha = values(rest, ("uniform", ()), ("normal", (0, 0.1, (1, 3))))
            if t is transforms_numpy:  # augment.train_image itself, fed pycls's draws
                crop = [("uniform", a, d) for a, d in zip([(0.08, 1.0, 10), (3 / 4, 4 / 3, 10), (0.0, 1.0, 10)], padded_tries(draws))]
                place = [("integers", (0, n - c + 1, None), v) for n, c, v in zip(shape, box[2:], box[:2])] if box else []
                rng = Replay(children=[Replay(*crop, *place), Replay(("uniform", (0.0, 1.0, None), flip)), Replay(("normal", (0.0, 0.1, 3), alpha[0]))])
                ours = augment.train_image(t, image, recipe, False, rng)
                assert rng.done()
            else:
                ours = t.crop_resize(image, *box, SIZE) if box else t.scale_center_crop(image, SIZE, SIZE)
                ours = t.add_lighting(t.horizontal_flip(ours, flip), alpha[0])
            pixels = np.abs(to_pycls_imagenet(ours) - out) * sd * 255.0  # back on the [0, 255] scale
            assert pixels.max() <= RESIZE_TOLERANCE, pixels.max()


def test_model_normalisation_is_pycls_imagenet():
    np.testing.assert_array_equal(preprocessing.IMAGENET_MEAN, pycls_imagenet._MEAN[::-1])
    np.testing.assert_array_equal(preprocessing.IMAGENET_STD, pycls_imagenet._SD[::-1])


# ---------------------------------------------------------------- CIFAR


def cifar_loader():
    """pycls's CIFAR-10 training ``_prepare_im`` (images CHW, RGB planes as its loader reads them)."""
    loader = object.__new__(pycls_cifar10.Cifar10)
    loader._split = "train"
    return loader._prepare_im


def test_cifar_training_image_equals_pycls_loader(t, recorder, monkeypatch):
    """pycls's CIFAR loader normalising with the model's mean/std (ImageNet's), as the 100-epoch reference does.

    pycls pads after normalising, with zeros: the mean it subtracts.  With
    its own CIFAR constants that is the CIFAR mean; our models subtract the
    ImageNet mean, so the same loader with those constants is the reference.
    """
    monkeypatch.setitem(pycls_cfg.TRAIN, "IM_SIZE", 32)
    monkeypatch.setattr(pycls_cifar10, "_MEAN", [255.0 * m for m in preprocessing.IMAGENET_MEAN])
    monkeypatch.setattr(pycls_cifar10, "_SD", [255.0 * s for s in preprocessing.IMAGENET_STD])
    assert geometry.CIFAR_FILL == tuple(pycls_cifar10._MEAN) and geometry.CIFAR_PAD == 4
    recipe, prepare, seen = Recipe(image_size=32, pca_lighting=0.1), cifar_loader(), set()
    images = np.random.default_rng(14).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    for seed in range(60):
        np.random.seed(seed)
        image = images[seed % 8]
        out = prepare(image.transpose(2, 0, 1).astype(np.float32))
        flip, top, left = values(recorder.take(), ("uniform", ()), ("randint", (0, 8)), ("randint", (0, 8)))
        seen.add((flip < 0.5, top, left))
        if t is transforms_numpy:  # augment.train_image itself; lighting on, but a draw for it would fail Replay
            crop = Replay(("uniform", (0.0, 1.0, None), flip), ("integers", (0, 8, 2), np.array([top, left])))
            rng = Replay(children=[crop, Replay(), Replay()])
            ours = augment.train_image(t, image, recipe, True, rng)
            assert rng.done()
        else:
            ours = t.pad_crop(t.horizontal_flip(image, flip), top, left)
        ours = np.ascontiguousarray(np.asarray(ours).transpose(2, 0, 1))
        np.testing.assert_allclose(pycls_transforms.color_norm(ours, pycls_cifar10._MEAN, pycls_cifar10._SD), out, atol=1e-6)
    assert {s[0] for s in seen} == {False, True} and {s[1] for s in seen} == set(range(8))  # pycls's randint stops at 7


def test_small_images_train_image_is_pad_crop_flip_without_lighting(t):
    recipe = Recipe(image_size=32, pca_lighting=0.1)
    image = np.random.default_rng(15).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    allowed = [set(image[..., c].ravel().astype(np.float32)) | {np.float32(geometry.CIFAR_FILL[c])} for c in range(3)]
    for seed in range(10):
        ours = np.asarray(augment.train_image(t, image, recipe, True, t.make_rng(seed)))
        crop_rng = t.split_rng(t.make_rng(seed), 3)[0]
        np.testing.assert_array_equal(ours, np.asarray(t.pad_crop_flip(image, crop_rng)))
        assert all(set(ours[..., c].ravel()) <= allowed[c] for c in range(3))  # no lighting offset anywhere
