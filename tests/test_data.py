"""Input pipelines: image folders and TFDS give batched 0-255 RGB at the model's size."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from fashion_small_tfds import FashionBrightnessSmall, FashionMnistSmall

from helpers import FASHION_MINI
from tlkeras import data
from tlkeras.config import Config
from tlkeras.data import tfds_source
from tlkeras.errors import ConfigError


def load(config: Config, image_size: int) -> data.DataSplits:
    """`data.load` as training calls it: the labels the task asks for, the run's seed."""
    labels = data.LABEL_NUMBERS if config.model.task == "regression" else data.LABEL_CLASSES
    return data.load(config.data, labels, config.runtime.seed, image_size)


def collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(images), np.concatenate(labels)


def test_image_folder_carves_a_seeded_validation_split_covering_every_class():
    config = Config.of(image_dir=str(FASHION_MINI), batch_size=64, validation_fraction=0.1)
    splits = load(config, image_size=40)
    assert splits.output_names == sorted(p.name for p in (FASHION_MINI / "train").iterdir())
    train_images, train_labels = collect(splits.train.in_order())
    _, validation_labels = collect(splits.validation)
    _, test_labels = collect(splits.test)
    assert (len(train_labels), len(validation_labels), len(test_labels)) == (1800, 200, 500)
    assert set(validation_labels) == set(range(10))
    assert train_images.shape[1:] == (40, 40, 3) and train_images.dtype == np.float32
    assert 0 <= train_images.min() and train_images.max() > 200  # Raw 0-255 pixels.
    # Grayscale PNGs become RGB with three equal channels.
    np.testing.assert_array_equal(train_images[..., 0], train_images[..., 2])
    # Same seed, same split: validation is reproducible.
    again = load(config, image_size=40)
    np.testing.assert_array_equal(collect(again.validation)[1], validation_labels)


def test_each_epoch_has_its_own_order_which_a_new_pipeline_repeats():
    """A resumed run must see epoch e's batches exactly as an uninterrupted run does."""
    config = Config.of(image_dir=str(FASHION_MINI), batch_size=512)
    splits = load(config, image_size=32)
    assert splits.train.steps_per_epoch == 4  # 1,800 images.
    both = collect(splits.train.epochs(0, 2))[1]
    first, second = both[:1800], both[1800:]
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    again = load(config, image_size=32)  # As after a restart: a new pipeline.
    np.testing.assert_array_equal(collect(again.train.epochs(1, 2))[1], second)
    other_seed = load(config.replace(seed=7), image_size=32)
    assert not np.array_equal(collect(other_seed.train.epochs(1, 2))[1], second)


def test_seed_zero_gives_reproducible_epochs_too():
    """--seed=0 sets TensorFlow's global seed to 0, where tensor-valued shuffle seeds fail."""
    keras.utils.set_random_seed(0)
    config = Config.of(image_dir=str(FASHION_MINI), batch_size=512, seed=0)
    labels = collect(load(config, image_size=32).train.epochs(0, 3))[1]
    assert len(labels) == 3 * 1800 and not np.array_equal(labels[:1800], labels[1800:3600])
    again = collect(load(config, image_size=32).train.epochs(2, 3))[1]
    np.testing.assert_array_equal(again, labels[3600:])


def test_validation_folder_with_other_classes_is_refused(small_image_dir, tmp_path):
    only_class = tmp_path / "images" / "validation" / "Dress"
    only_class.mkdir(parents=True)
    shutil.copy(next((small_image_dir / "train" / "Dress").iterdir()), only_class)
    (tmp_path / "images" / "train").symlink_to(small_image_dir / "train")
    config = Config.of(image_dir=str(tmp_path / "images"), validation_split="validation")
    with pytest.raises(ConfigError, match=r"^image_dir: the classes in .*validation.* differ"):
        load(config, image_size=32)


def test_tfds_dataset_by_name_with_validation_carved_from_train(small_image_dir, tmp_path):
    FashionMnistSmall.source_dir = small_image_dir
    config = Config.of(dataset="fashion_mnist_small", data_dir=str(tmp_path), batch_size=16,
                       validation_fraction=0.25)
    splits = load(config, image_size=48)
    images, labels = collect(splits.train.in_order())
    assert images.shape == (150, 48, 48, 3) and images.max() > 200
    np.testing.assert_array_equal(images[..., 0], images[..., 1])  # Grey became RGB.
    assert len(collect(splits.validation)[1]) == 50
    assert sorted(collect(splits.test)[1]) == sorted(list(range(10)) * 8)
    assert splits.output_names == sorted(p.name for p in (FASHION_MINI / "train").iterdir())
    with pytest.raises(ConfigError, match="^test_split: TFDS dataset 'fashion_mnist_small' "
                                          "has no split 'holdout'"):
        load(Config.of(dataset="fashion_mnist_small", data_dir=str(tmp_path),
                       test_split="holdout"), image_size=32)


def test_tfds_numeric_label_gives_regression_targets_and_the_training_targets(small_image_dir,
                                                                             tmp_path):
    FashionBrightnessSmall.source_dir = small_image_dir
    config = Config.of(dataset="fashion_brightness_small", data_dir=str(tmp_path), batch_size=16,
                       validation_fraction=0.25, task="regression")
    splits = load(config, image_size=32)
    images, targets = collect(splits.train.in_order())
    assert targets.shape == (150, 1) and targets.dtype == np.float32
    # The label is the mean grey value of the original 28x28 image; resizing keeps it close.
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), targets[:, 0], atol=3)
    assert splits.output_names == ["brightness"]
    # The training targets, for the task's statistics: exactly the training split's labels.
    assert splits.train_targets.dtype == np.float32
    np.testing.assert_array_equal(np.sort(splits.train_targets, axis=0), np.sort(targets, axis=0))
    assert collect(splits.test)[1].shape == (80, 1)
    with pytest.raises(ConfigError, match="^task: TFDS dataset 'fashion_mnist_small' has no "
                                          r"\(image, numeric label\)"):
        load(Config.of(dataset="fashion_mnist_small", data_dir=str(tmp_path),
                       task="regression"), image_size=32)


@pytest.fixture
def messy_image_dir(small_image_dir, tmp_path):
    """The small real folder plus broken files and RGBA / greyscale-JPEG versions of images."""
    root = tmp_path / "messy"
    shutil.copytree(small_image_dir, root)
    bag = root / "train" / "Bag"
    good = sorted(bag.iterdir())[0].read_bytes()
    (bag / "truncated.png").write_bytes(good[:60])
    (bag / "notes.jpg").write_text("not an image")
    grey = tf.io.decode_png(good, channels=1)
    (bag / "grey.jpg").write_bytes(tf.io.encode_jpeg(grey).numpy())
    opaque = tf.fill(grey.shape, tf.constant(255, tf.uint8))
    rgba = tf.concat([tf.image.grayscale_to_rgb(grey), opaque], axis=-1)
    (bag / "rgba.png").write_bytes(tf.io.encode_png(rgba).numpy())
    return root


def test_broken_files_are_skipped_and_listed_rgba_and_grey_are_converted(messy_image_dir):
    splits = load(Config.of(image_dir=str(messy_image_dir), batch_size=64), image_size=32)
    bag = messy_image_dir / "train" / "Bag"
    assert sorted(splits.skipped_files) == [str(bag / "notes.jpg"), str(bag / "truncated.png")]
    assert splits.sizes["train"] + splits.sizes["validation"] == 200 + 2  # + grey + rgba
    images, _ = collect(splits.train.in_order())
    assert images.shape[1:] == (32, 32, 3)


def test_class_with_only_broken_files_is_a_clear_error(messy_image_dir):
    broken = messy_image_dir / "train" / "Coat"
    for image in broken.iterdir():
        image.write_bytes(b"corrupt")
    with pytest.raises(ConfigError, match=r"^image_dir: class folder .*Coat' holds no "
                                          "readable image"):
        load(Config.of(image_dir=str(messy_image_dir)), image_size=32)


def test_one_split_alone_comes_in_order_from_the_same_reader(small_image_dir):
    """`tlkeras evaluate` reads a split through the reader training uses, unshuffled."""
    config = Config.of(image_dir=str(small_image_dir), batch_size=32)
    batches, names, skipped = data.load_split(config.data, data.LABEL_CLASSES,
                                              config.runtime.seed, "test", 24)
    images, labels = collect(batches)
    assert names == sorted(p.name for p in (small_image_dir / "test").iterdir()) and skipped == []
    assert images.shape == (80, 24, 24, 3)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 8))
    with pytest.raises(ConfigError, match="^split: no folder .*holdout"):
        data.load_split(config.data, data.LABEL_CLASSES, 0, "holdout", 24)


def test_regression_csv_gives_named_targets_for_training_and_for_one_split():
    config = Config.of(image_dir=str(FASHION_MINI), task="regression", cache_memory_mb=0)
    splits = load(config, image_size=8)
    assert splits.output_names == ["mean_brightness", "ink_fraction"]
    assert splits.train_targets.shape == (1800, 2) and splits.sizes["test"] == 500
    assert not splits.images_cached
    _, targets = collect(splits.train.in_order())
    np.testing.assert_array_equal(targets, splits.train_targets)  # Both in the seeded order.
    batches, names, _ = data.load_split(config.data, data.LABEL_NUMBERS, 0, "test", 8)
    assert names == splits.output_names and collect(batches)[1].shape == (500, 2)


def test_a_missing_tfds_package_and_two_sources_are_clear_errors(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "tfds", None)
    config = Config.of(dataset="fashion_mnist_small", data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^dataset: TFDS datasets need the tensorflow-datasets "
                                          r"package\. Install it with `pip install"):
        load(config, image_size=32)
    with pytest.raises(ConfigError, match="^dataset: give exactly one data source"):
        data.load_split(config.replace(image_dir=str(FASHION_MINI)).data, data.LABEL_CLASSES,
                        0, "test", 32)
