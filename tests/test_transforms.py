"""One statistical test of pycls's transforms, run on both backends' modules.

``keras_regnet.data.transforms_tf`` (tf.data) and
``keras_regnet.data.transforms_numpy`` (TensorFlow-free) have the same
functions with the same signatures; every test here runs on each and checks
the values the transform produces: crop geometry against pycls's own
``random_sized_crop``, the fallback, flip rate, PCA lighting covariance,
pad-crop offsets, Mixup/CutMix label mass, eval geometry, RandAugment.

Crop boxes are read back from the output: on an image whose pixels hold their
own row (channel 0) and column (channel 1), bilinear resizing is exact, so
two output pixels give the box's position and size.
"""

import io

import numpy as np
import pytest
import scipy.stats
from conftest import require

from keras_regnet.data import transforms_numpy
from keras_regnet.data.geometry import CIFAR_FILL, EIG_VALS, EIG_VECS

pycls_transforms = require("pycls.datasets.transforms")


@pytest.fixture(params=["tf", "numpy"])
def t(request):
    """The transforms module of one backend."""
    if request.param == "numpy":
        return transforms_numpy
    from keras_regnet.data import transforms_tf

    return transforms_tf


def ramp(h, w, offset=0, dtype=np.uint8):
    """Image with pixel (y, x) = (y + offset, x + offset, 0) (uint8, or float32 for sides over 256)."""
    rows, cols = np.meshgrid(np.arange(h) + offset, np.arange(w) + offset, indexing="ij")
    return np.stack([rows, cols, np.zeros_like(rows)], -1).astype(dtype)


def crop_box(out):
    """(top, left, height, width) of the source box a ramp image's resized crop came from."""
    size = out.shape[0]
    i, j, mid = size // 4, 3 * size // 4, size // 2
    slope_y = (out[j, mid, 0] - out[i, mid, 0]) / (j - i)
    slope_x = (out[mid, j, 1] - out[mid, i, 1]) / (j - i)
    top = out[i, mid, 0] - ((i + 0.5) * slope_y - 0.5)
    left = out[mid, i, 1] - ((i + 0.5) * slope_x - 0.5)
    return np.round([top, left, slope_y * size, slope_x * size]).astype(int)


def crop_statistics(boxes, h, w):
    boxes = np.asarray(boxes)
    return boxes[:, 2] * boxes[:, 3] / (h * w), boxes[:, 3] / boxes[:, 2]


# ---------------------------------------------------------------- Inception crop


@pytest.fixture(scope="module")
def pycls_crops():
    """Area fractions and aspect ratios (w/h) of pycls's own random_sized_crop on a 180x240 image."""
    image = ramp(180, 240).astype(np.float32)
    np.random.seed(0)
    boxes = [crop_box(pycls_transforms.random_sized_crop(image, 64, area_frac=0.08)) for _ in range(1500)]
    return crop_statistics(boxes, 180, 240)


def test_inception_crop_statistics_are_pycls(t, pycls_crops):
    image, rng = ramp(180, 240), t.make_rng(1)
    outs = [np.asarray(t.inception_crop(image, 64, rng)) for _ in range(1500)]
    assert all(o.shape == (64, 64, 3) and o.dtype == np.float32 for o in outs)
    boxes = np.array([crop_box(o) for o in outs])
    assert boxes[:, 0].min() >= 0 and boxes[:, 1].min() >= 0
    assert (boxes[:, 0] + boxes[:, 2]).max() <= 180 and (boxes[:, 1] + boxes[:, 3]).max() <= 240
    area, aspect = crop_statistics(boxes, 180, 240)
    ref_area, ref_aspect = pycls_crops
    assert 0.075 <= area.min() and area.max() <= 1.0
    assert 0.72 <= aspect.min() and aspect.max() <= 1.39
    # Same distribution as pycls (tf.image.sample_distorted_bounding_box, the old tf.data crop, fails: p ~ 1e-13 on area, mean 0.37 vs 0.43).
    assert scipy.stats.ks_2samp(area, ref_area).pvalue > 1e-3
    assert scipy.stats.ks_2samp(np.log(aspect), np.log(ref_aspect)).pvalue > 1e-3
    assert abs(area.mean() - ref_area.mean()) < 0.03
    assert abs(np.mean(aspect > 1) - np.mean(ref_aspect > 1)) < 0.06  # the height/width swap


def sized_crop_statistics(boxes, h, w):
    """Fallback share and (area, aspect) of the boxes a 64 x size crop of an h x w ramp came from."""
    boxes = np.asarray(boxes)
    fallback = np.all(boxes == [0, (w - h) // 2, h, h], axis=1)  # the centre square of pycls's fallback
    return fallback.mean(), crop_statistics(boxes[~fallback], h, w)


def test_inception_crop_retries_and_fallback_are_pycls(t):
    # 64 x 400: a try fits about one time in eleven, so the chosen box comes from any of the 10 tries
    # and four crops in ten fall back; the selection must match pycls's, not only the draws.
    image, n = ramp(64, 400, dtype=np.float32), 1000
    np.random.seed(1)
    ref = sized_crop_statistics([crop_box(pycls_transforms.random_sized_crop(image, 16)) for _ in range(n)], 64, 400)
    rng = t.make_rng(11)
    ours = sized_crop_statistics([crop_box(np.asarray(t.inception_crop(image, 16, rng))) for _ in range(n)], 64, 400)
    (fallback, (area, aspect)), (ref_fallback, (ref_area, ref_aspect)) = ours, ref
    assert 0.3 < ref_fallback < 0.5 and abs(fallback - ref_fallback) < 4 * np.sqrt(2 * 0.25 / n)
    assert scipy.stats.ks_2samp(area, ref_area).pvalue > 1e-3
    assert scipy.stats.ks_2samp(np.log(aspect), np.log(ref_aspect)).pvalue > 1e-3
    assert area.max() <= 64 * 85 / 25600 and 0.72 <= aspect.min() and aspect.max() <= 1.39


def test_inception_crop_falls_back_to_pycls_centre_crop(t):
    # 10 x 250: no box of >= 8% of the area with aspect in [3/4, 4/3] fits in 10 rows.
    image = ramp(10, 250)
    expected = pycls_transforms.center_crop(16, pycls_transforms.scale(16, image.astype(np.float32)))
    rng = t.make_rng(2)
    for _ in range(5):
        out = np.asarray(t.inception_crop(image, 16, rng))
        np.testing.assert_allclose(out, expected, atol=0.02)
    # The centre of the image, not the whole image squeezed to 16 x 16.
    assert 100 < out[:, :, 1].min() and out[:, :, 1].max() < 150


# ---------------------------------------------------------------- flips, CIFAR crop, lighting


def test_random_flip_rate_is_one_half(t):
    image, rng = ramp(6, 8), t.make_rng(3)
    outs = np.stack([np.asarray(t.random_flip(image, rng)) for _ in range(2000)])
    flipped = outs[:, 0, 0, 1] == 7
    np.testing.assert_array_equal(outs[flipped], np.broadcast_to(image[:, ::-1], outs[flipped].shape))
    np.testing.assert_array_equal(outs[~flipped], np.broadcast_to(image, outs[~flipped].shape))
    assert abs(flipped.mean() - 0.5) < 0.04  # 3.6 standard deviations


def test_pad_crop_flip_offsets_are_pycls_uniform_over_eight(t):
    image, rng = ramp(32, 32, offset=1), t.make_rng(4)  # values 1..32, channel 2 zero: padding is visible
    outs = np.stack([np.asarray(t.pad_crop_flip(image, rng)) for _ in range(1800)])
    assert outs.shape == (1800, 32, 32, 3) and outs.dtype == np.float32
    flipped = outs[:, 16, 17, 1] < outs[:, 16, 16, 1]
    dy = outs[:, 16, 16, 0] - 13  # crop top in padded coordinates, 0..7
    dx = np.where(flipped, 20 - outs[:, 16, 16, 1], outs[:, 16, 16, 1] - 13)  # flipped first, as pycls
    for offsets in (dy, dx):
        counts = np.bincount(offsets.astype(int), minlength=8)
        assert len(counts) == 8 and counts.min() > 0  # 0..7, as pycls's randint(0, 8): offset 8 never
        assert scipy.stats.chisquare(counts).pvalue > 1e-3
    assert abs(flipped.mean() - 0.5) < 0.05
    # A crop at offset 0 starts with 4 rows of padding in pycls's colour (the normalisation's mean), then the image's first row.
    top = outs[dy == 0]
    row = top[:, 4]
    assert np.all(top[:, :4] == np.float32(CIFAR_FILL)) and np.all(row[row[..., 2] == 0][:, 0] == 1)
    assert np.all(row[row[..., 2] != 0] == np.float32(CIFAR_FILL))


def pycls_lighting_coefficients(n):
    """``alpha * eig_val`` of ``n`` draws of pycls's own lighting, solved from its RGB offsets."""
    imagenet = require("pycls.datasets.imagenet")
    np.random.seed(5)
    offsets = [pycls_transforms.lighting(np.zeros((3, 1, 1)), 0.1, imagenet._EIG_VALS, imagenet._EIG_VECS)[::-1, 0, 0] for _ in range(n)]
    return np.linalg.solve(imagenet._EIG_VECS, np.array(offsets).T).T


def test_pca_lighting_has_the_alexnet_covariance(t):
    rng = t.make_rng(5)
    outs = np.stack([np.asarray(t.pca_lighting(np.zeros((2, 3, 3), np.uint8), 0.1, rng)) for _ in range(3000)])
    assert np.all(outs == outs[:, :1, :1])  # one offset per image, the same at every pixel
    noise = outs[:, 0, 0] / 255.0
    expected = EIG_VECS @ np.diag((0.1 * EIG_VALS) ** 2) @ EIG_VECS.T
    np.testing.assert_allclose(np.cov(noise.T), expected, atol=0.08 * expected.max())
    assert np.all(np.abs(noise.mean(0)) < 4 * 0.1 * EIG_VALS[0] / np.sqrt(3000))
    along_first = noise @ EIG_VECS[:, 0]
    assert np.std(along_first) == pytest.approx(0.1 * EIG_VALS[0], rel=0.06)
    # Each eigen-direction's coefficient is distributed as pycls's own (KS against 3,000 of its draws).
    ours, ref = np.linalg.solve(EIG_VECS, noise.T).T, pycls_lighting_coefficients(3000)
    for k in range(3):
        assert scipy.stats.ks_2samp(ours[:, k], ref[:, k]).pvalue > 1e-3
        assert np.std(ref[:, k]) == pytest.approx(0.1 * EIG_VALS[k], rel=0.06)


# ---------------------------------------------------------------- Mixup / CutMix


def constant_batch(n=8, size=12):
    """Image i is the constant 10 (i + 1), label one-hot i."""
    values = 10.0 * (np.arange(n) + 1)
    images = np.broadcast_to(values[:, None, None, None], (n, size, size, 3)).astype(np.float32)
    return images, np.eye(n, dtype=np.float32), values


def test_mixup_blends_images_and_labels_alike(t):
    images, labels, values = constant_batch()
    rng, lams = t.make_rng(6), []
    for _ in range(300):
        mx, my = (np.asarray(a) for a in t.mix(images, labels, 0.2, 0.0, rng))
        np.testing.assert_allclose(my.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(mx, np.broadcast_to((my @ values)[:, None, None, None], mx.shape), rtol=1e-5)
        lams.append(np.diag(my).min())
    # lam ~ Beta(0.2, 0.2): mean 1/2, variance 1 / (4 (2 alpha + 1)) = 0.179.
    assert abs(np.mean(lams) - 0.5) < 0.08 and np.var(lams) == pytest.approx(1 / (4 * 1.4), abs=0.03)


def test_cutmix_label_mass_is_the_pasted_area(t):
    images, labels, values = constant_batch()
    rng, areas = t.make_rng(7), []
    for _ in range(300):
        mx, my = (np.asarray(a) for a in t.mix(images, labels, 0.0, 1.0, rng))
        fractions = (mx[..., 0].reshape(8, -1, 1) == values).mean(1)  # share of each class's value
        np.testing.assert_allclose(my, fractions, atol=1e-6)
        areas.append(1 - np.diag(my).min())
    # lam ~ U(0, 1) for alpha 1; a box of int(sqrt(1 - lam) * 12) around a uniform centre, clipped at the
    # borders, covers 0.263 of the image on average (2e5 draws of that rule); at most 10 x 10 of 12 x 12.
    assert np.mean(areas) == pytest.approx(0.263, abs=0.04) and 0.6 < max(areas) <= 100 / 144 + 1e-6


def test_mixup_and_cutmix_together_take_turns(t):
    images, labels, _ = constant_batch()
    rng, cut = t.make_rng(8), []
    for _ in range(200):
        mx, my = (np.asarray(a) for a in t.mix(images, labels, 0.2, 1.0, rng))
        np.testing.assert_allclose(my.sum(1), 1.0, rtol=1e-5)
        cut.append(any(len(np.unique(im)) > 1 for im in mx))
    assert abs(np.mean(cut) - 0.5) < 0.12


# ---------------------------------------------------------------- eval geometry, RandAugment


def pycls_eval(image, size):
    return pycls_transforms.center_crop(size, pycls_transforms.scale(round(size * 256 / 224), image.astype(np.float32)))


@pytest.mark.parametrize("shape, size", [((375, 500), 224), ((500, 333), 224), ((256, 301), 224), ((183, 160), 160), ((64, 80), 32)])
def test_eval_resize_crop_is_pycls(t, shape, size):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    out = np.asarray(t.eval_resize_crop(image, size))
    assert out.shape == (size, size, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, pycls_eval(image, size), atol=0.02)


def test_eval_resize_crop_keeps_an_image_already_at_scale(t):
    image = ramp(256, 300)
    out = np.asarray(t.eval_resize_crop(image, 224))
    np.testing.assert_array_equal(out, image[16:240, 38:262].astype(np.float32))  # offsets ceil(32/2), ceil(76/2)


def test_decode_image_gives_pycls_decoders_pixels(t):
    """Real CIFAR-10 JPEGs, enlarged photos re-encoded as JPEG, and a PNG decode to OpenCV's pixels (pycls's decoder)."""
    import cv2
    from PIL import Image

    from keras_regnet.data.cifar10 import embedded_cifar10_jpegs

    files = embedded_cifar10_jpegs("validation")[0][:20]
    enlarged = io.BytesIO()
    Image.open(io.BytesIO(files[0])).resize((333, 250), Image.BICUBIC).save(enlarged, "JPEG", quality=90)
    png = io.BytesIO()
    Image.fromarray(ramp(40, 50)).save(png, "PNG")
    for encoded in files + [enlarged.getvalue(), png.getvalue()]:
        expected = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        np.testing.assert_array_equal(np.asarray(t.decode_image(encoded)), expected)


def test_eval_image_center_crop_is_the_identity_at_its_size(t):
    """A small-image model is validated on its images as they are; larger ones are scaled to the size first."""
    from keras_regnet.data import augment

    image = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(augment.eval_image(t, image, 32, "center_crop")), image.astype(np.float32))
    wide = ramp(64, 96)
    np.testing.assert_allclose(np.asarray(augment.eval_image(t, wide, 32, "center_crop")), t.scale_center_crop(wide, 32, 32))
    with pytest.raises(ValueError, match="eval_transform must be one of"):
        augment.eval_image(t, image, 32, "squash")


def test_randaugment_changes_a_batch_within_range(t):
    images = np.random.default_rng(9).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    out = np.asarray(t.randaugment(images, 0.5))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    assert np.abs(out - images).mean() > 1.0
