"""Data sources: one Source for every backend; what each opening yields, and the clear errors."""

import io

import numpy as np
import pytest
from PIL import Image

from keras_regnet.data import Examples, from_arrays, open_eval_source, open_source
from keras_regnet.data.cifar10 import load_embedded_cifar10
from keras_regnet.data.pipeline_numpy import decode_file, read_examples
from keras_regnet.errors import InvalidFileError


def write_class_folders(root, classes=("cat", "dog"), per_class=10, size=(40, 50)):
    """PNG images (lossless); image i of class c is filled with the value 10 i + c."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full(size + (3,), 10 * i + c, np.uint8)).save(root / name / f"{i:02d}.png")


def test_embedded_source():
    source = open_source("embedded")
    assert (source.num_train, source.num_validation, source.num_classes) == (4000, 1000, 10)
    assert source.class_names[:2] == ["airplane", "automobile"] and source.description == "embedded"
    assert source.train.images.shape == (4000, 32, 32, 3) and source.train.images.dtype == np.uint8
    assert source.train.labels.dtype == np.int64 and np.bincount(source.validation.labels).tolist() == [100] * 10


def test_cifar10_npz_source_holds_out_5000(tmp_path):
    # A CIFAR-10 JPEG .npz of 5,100 images: the embedded subset and its first 100 again.
    images, labels, classes = load_embedded_cifar10("all")
    jpegs = []
    for image in np.concatenate([images, images[:100]]):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=95)
        jpegs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(j) for j in jpegs])])
    path = tmp_path / "cifar.npz"
    np.savez(path, train_jpeg=np.concatenate(jpegs), train_offsets=offsets,
             train_labels=np.concatenate([labels, labels[:100]]), classes=np.array(classes))
    source = open_source(str(path))
    assert (source.num_train, source.num_validation) == (100, 5000) and source.class_names == classes
    assert source.train.images.shape == (100, 32, 32, 3) and source.description == str(path)
    with pytest.raises(ValueError, match=r"data='.*missing\.npz': no such \.npz file"):
        open_source(str(tmp_path / "missing.npz"))


def test_flat_directory_holds_out_every_tenth_image(tmp_path):
    write_class_folders(tmp_path, per_class=12)
    source = open_source(str(tmp_path))
    assert source.class_names == ["cat", "dog"] and (source.num_train, source.num_validation) == (20, 4)
    names = [f.split("/")[-2] + "/" + f.split("/")[-1] for f in source.validation.files]
    assert names == ["cat/00.png", "cat/10.png", "dog/00.png", "dog/10.png"]
    assert source.validation.labels.tolist() == [0, 0, 1, 1]
    images, labels = read_examples(source.train, [0, 19])
    assert images[0].shape == (40, 50, 3) and images[0][0, 0, 0] == 10 and images[1][0, 0, 0] == 10 * 11 + 1
    assert labels.tolist() == [0, 1]


def test_train_and_val_directories(tmp_path):
    write_class_folders(tmp_path / "train", per_class=3)
    write_class_folders(tmp_path / "val", per_class=2)
    source = open_source(str(tmp_path))
    assert source.class_names == ["cat", "dog"] and (source.num_train, source.num_validation) == (6, 4)
    assert all("/val/" in f for f in source.validation.files)
    (tmp_path / "val" / "dog").rename(tmp_path / "val" / "wolf")
    with pytest.raises(ValueError, match=r"has no folder for class 'dog'"):
        open_source(str(tmp_path))


def test_directory_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class subfolders"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "noimages" / "a").mkdir(parents=True)
    (tmp_path / "noimages" / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="contains no images with extensions"):
        open_source(str(tmp_path / "noimages"))
    with pytest.raises(ValueError, match="data must be 'embedded', a .npz file"):
        open_source(42)


def test_eval_source_reads_every_image_of_val(tmp_path):
    write_class_folders(tmp_path / "val", per_class=3)
    source = open_eval_source(str(tmp_path))
    assert source.train is None and source.num_validation == 6 and source.description == f"{tmp_path}/val (2 classes)"
    assert source.validation.take(4).labels.tolist() == [0, 0, 0, 1] and source.validation.take(4).count == 4


def test_arrays_source_and_its_checks():
    x = np.zeros((6, 8, 8, 3), np.uint8)
    source = from_arrays((x, np.array([0, 1, 2, 0, 1, 4])), (x[:2], np.array([5, 0])))
    assert source.class_names == ["0", "1", "2", "3", "4", "5"] and (source.num_train, source.num_validation) == (6, 2)
    assert source.description == "numpy arrays (6 training images)"
    with pytest.raises(ValueError, match=r"data images must be a uint8 array of shape \(N, height, width, 3\).*float32"):
        from_arrays((x.astype("float32"), np.zeros(6, int)))
    with pytest.raises(ValueError, match=r"data labels must be 6 integer class indices.*shape \(6, 3\)"):
        from_arrays((x, np.zeros((6, 3), int)))
    with pytest.raises(ValueError, match="validation_data labels must be class indices >= 0; got -1"):
        from_arrays((x, np.zeros(6, int)), (x, -np.ones(6, int)))
    with pytest.raises(ValueError, match=r"data must be an \(images, labels\) pair"):
        from_arrays(x)


def test_image_files_are_decoded_only_as_images(tmp_path):
    (tmp_path / "fake.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n")  # PostScript: Pillow must not run it
    with pytest.raises(InvalidFileError, match="is not a readable JPEG, PNG, GIF or BMP image") as err:
        decode_file(str(tmp_path / "fake.jpg"))
    assert err.value.path == str(tmp_path / "fake.jpg")
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "ok.gif.png")
    np.testing.assert_array_equal(decode_file(str(tmp_path / "ok.gif.png")), pixels)


def test_a_tfds_split_is_not_read_without_tensorflow():
    examples = Examples(tfds_builder=object(), tfds_split="validation", count=3)
    with pytest.raises(ValueError, match="TensorFlow Datasets split 'validation' needs the tf.data pipeline"):
        read_examples(examples, [0])
