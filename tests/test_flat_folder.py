"""A flat `<image_dir>/<class>/<image>` folder (Keras' `image_dataset_from_directory` layout).

It is carved into train, validation and test per class with the seed: the carve is checked on
real Fashion-MNIST PNGs, training and `tlkeras evaluate` are shown to read the same test images,
one real run on the flat folder is evaluated again from its export, and a WebP in a class
folder is read like any other image.
"""

import io
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import FASHION_MINI, run_module, run_tlkeras
from tlkeras import data
from tlkeras.config import Config
from tlkeras.data import decode
from tlkeras.data.carve import SPLITS, carve, held_out
from tlkeras.data.image_folder import ImageFolder
from tlkeras.errors import ConfigError

CLASSES = sorted(path.name for path in (FASHION_MINI / "train").iterdir())
# Class i gets 6 + i images: uneven classes, so a carve that is not per class shows.
PER_CLASS = {name: 6 + i for i, name in enumerate(CLASSES)}


def flat_copy(root, per_class: dict[str, int]):
    """root/<class>/ with that many real images of that Fashion-MNIST class."""
    for class_name, count in per_class.items():
        (root / class_name).mkdir(parents=True)
        for image in sorted((FASHION_MINI / "train" / class_name).iterdir())[:count]:
            shutil.copy(image, root / class_name / image.name)
    return root


@pytest.fixture(scope="module")
def flat_dir(tmp_path_factory):
    return flat_copy(tmp_path_factory.mktemp("flat") / "fashion", PER_CLASS)


def carved(folder, seed: int = 42, **values):
    config = Config.of(image_dir=str(folder), seed=seed, **values)
    return ImageFolder(config.data, config.runtime.seed).carved_files()


def test_the_carve_is_stratified_disjoint_complete_and_seeded(flat_dir):
    splits, names = carved(flat_dir)
    assert names == CLASSES
    listed = {str(path) for path in flat_dir.rglob("*.png")}
    paths = {split: [path for path, _ in splits[split]] for split in SPLITS}
    assert sorted(sum(paths.values(), [])) == sorted(listed)  # Every file once: disjoint.
    for label, name in enumerate(CLASSES):
        counts = {split: sum(1 for _, lab in splits[split] if lab == label) for split in SPLITS}
        # 10% rounded half up, at least 1 each: 6..15 images hold out 1 or 2 for each split.
        held = max(1, int(PER_CLASS[name] * 0.1 + 0.5))
        assert counts == {"train": PER_CLASS[name] - 2 * held, "validation": held,
                          "test": held}, name
        # Labels are the class folders' own.
        assert all(f"/{name}/" in path for path, lab in sum(splits.values(), []) if lab == label)
    assert carved(flat_dir) == (splits, names)  # Same seed: the same carve.
    other, _ = carved(flat_dir, seed=43)
    assert other["test"] != splits["test"] and other["validation"] != splits["validation"]
    # No test: the validation images stay, the test images train.
    untested, _ = carved(flat_dir, test_split="")
    assert untested["validation"] == splits["validation"] and untested["test"] == []
    assert sorted(untested["train"]) == sorted(splits["train"] + splits["test"])


def test_small_classes_get_training_images_first_and_bad_fractions_are_refused():
    assert [held_out(count, 0.1, 0.1) for count in (1, 2, 3, 20, 25)] == \
        [(0, 0), (1, 0), (1, 1), (2, 2), (3, 3)]
    files = [(f"{name}/{i}.png", label) for label, (name, count)
             in enumerate([("one", 1), ("two", 2), ("three", 3)]) for i in range(count)]
    splits = carve(files, ["one", "two", "three"], 0, 0.1, 0.1)
    assert [{split: [lab for _, lab in splits[split]].count(label) for split in SPLITS}
            for label in range(3)] == [{"train": 1, "validation": 0, "test": 0},
                                       {"train": 1, "validation": 1, "test": 0},
                                       {"train": 1, "validation": 1, "test": 1}]
    # Rounded half up, 0.5 of one image is that image: class 'one' is left without training.
    with pytest.raises(ConfigError, match=r"^test_fraction: --validation_fraction=0\.4 and "
                                          r"--test_fraction=0\.5 hold out 1 of the 1 image\(s\) "
                                          r"of class 'one', which leaves it no training image"):
        carve(files, ["one", "two", "three"], 0, 0.4, 0.5)
    with pytest.raises(ConfigError, match=r"^validation_fraction: --validation_fraction=0\.6 "
                                          r"holds out 1 of the 1 image\(s\) of class 'one'"):
        carve(files, ["one", "two", "three"], 0, 0.6, None)
    with pytest.raises(ConfigError, match=r"^test_fraction: .*must be below 1"):
        Config.of(image_dir="x", validation_fraction=0.5, test_fraction=0.5).data.validate()
    with pytest.raises(ConfigError, match=r"^test_fraction: must be in \(0, 1\)"):
        Config.of(image_dir="x", test_fraction=0.0).data.validate()
    Config.of(image_dir="x", validation_fraction=0.9, test_split="").data.validate()  # No test.


def test_a_flat_folder_with_too_few_images_is_refused_naming_the_split(tmp_path):
    flat_copy(tmp_path / "two", {"Bag": 2, "Coat": 2})  # 1 train + 1 validation, no test.
    config = Config.of(image_dir=str(tmp_path / "two"))
    with pytest.raises(ConfigError, match=r"^test_fraction: the test split carved from .* has "
                                          r"no readable image \(a class gives it one from 3 "
                                          r"images on\)\. Add images, or pass an empty "
                                          "--test_split"):
        data.load(config.data, data.LABEL_CLASSES, 42, 8)
    splits = data.load(config.replace(test_split="").data, data.LABEL_CLASSES, 42, 8)
    assert splits.sizes == {"train": 2, "validation": 2} and splits.test is None
    with pytest.raises(ConfigError, match=r"^validation_split: there is no folder"):
        data.load(config.replace(validation_split="val").data, data.LABEL_CLASSES, 42, 8)


def sorted_images(batches) -> np.ndarray:
    images = np.concatenate([images.numpy() for images, _ in batches])
    return images[np.lexsort(images.reshape(len(images), -1).T)]


def test_training_and_evaluate_read_the_same_carved_images(flat_dir):
    config = Config.of(image_dir=str(flat_dir), batch_size=64)
    splits = data.load(config.data, data.LABEL_CLASSES, 42, 12)
    carve_counts = {split: len(files) for split, files in carved(flat_dir)[0].items()}
    assert splits.sizes == carve_counts and splits.output_names == CLASSES
    for split, during_training in (("test", splits.test), ("validation", splits.validation)):
        batches, names, skipped = data.load_split(config.data, data.LABEL_CLASSES, 42, split, 12)
        assert names == CLASSES and skipped == []
        np.testing.assert_array_equal(sorted_images(batches), sorted_images(during_training))
    # The same carve again: a resumed run's data check passes; another seed's would not.
    assert data.load(config.data, data.LABEL_CLASSES, 42, 12).fingerprints == splits.fingerprints
    assert data.load(config.data, data.LABEL_CLASSES, 7, 12).fingerprints["train"] != \
        splits.fingerprints["train"]
    with pytest.raises(ConfigError, match=r"^split: .* carved into train, validation, test; "
                                          "there is no split 'holdout'"):
        data.load_split(config.data, data.LABEL_CLASSES, 42, "holdout", 12)


def webp_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", **options)
    return buffer.getvalue()


def test_a_webp_in_a_class_folder_is_read(tmp_path):
    root = flat_copy(tmp_path / "flat", {"Bag": 5, "Coat": 5})
    source = sorted((root / "Bag").iterdir())[0]
    pixels = np.asarray(Image.open(source).convert("RGB"))
    (root / "Bag" / "lossless.webp").write_bytes(webp_bytes(Image.fromarray(pixels),
                                                            lossless=True))
    source.unlink()  # The WebP takes the PNG's place.
    splits = data.load(Config.of(image_dir=str(root), test_split="").data,
                       data.LABEL_CLASSES, 42, 28)
    assert splits.skipped_files == [] and sum(splits.sizes.values()) == 10
    listed = sum(carved(root, test_split="")[0].values(), [])
    assert (str(root / "Bag" / "lossless.webp"), 0) in listed
    everything = np.concatenate([sorted_images(splits.train.in_order()),
                                 sorted_images(splits.validation)])
    # Lossless, and resizing 28 px to 28 px is the identity: the PNG's pixels exactly.
    assert any(np.array_equal(image, pixels) for image in everything)
    decoded = decode.decode_within_budget(tf.constant((root / "Bag" / "lossless.webp")
                                                      .read_bytes()), decode.max_pixels(64))
    np.testing.assert_array_equal(decoded.numpy(), pixels)


def test_a_run_on_a_flat_folder_is_evaluated_again_on_its_own_test_images(
        flat_dir, weights_path, tmp_path):
    process = run_tlkeras(f"--image_dir={flat_dir}", f"--weights={weights_path}",
                          "--image_size=32", "--epochs=1", "--fine_tune_epochs=1",
                          "--unfreeze=40", "--batch_size=32", "--seed=7",
                          f"--output_dir={tmp_path}", "--run_name=flat")
    assert process.returncode == 0, process.stderr[-5000:]
    run_dir = tmp_path / "flat"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    during_training = json.loads((run_dir / "report" / "phase2" / "report.json").read_text())
    test_files = carved(flat_dir, seed=7)[0]["test"]
    assert during_training["examples"] == len(test_files)
    assert [during_training["per_class"][name]["support"] for name in CLASSES] == \
        [sum(1 for _, label in test_files if label == i) for i in range(len(CLASSES))]

    # No --seed: evaluate takes the run's seed and fractions from its run.json.
    evaluated = run_module("evaluate", f"--model={run_dir / 'export'}",
                           f"--image_dir={flat_dir}", "--split=test",
                           f"--report_dir={tmp_path / 'report'}", timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "--seed=7 --validation_fraction=0.1 --test_fraction=0.1" in evaluated.stderr
    again = json.loads((tmp_path / "report" / "report.json").read_text())
    assert again["class_names"] == CLASSES
    assert again["confusion_matrix"] == during_training["confusion_matrix"]
    # Keras accumulates the run's accuracy in float32 (scale 1): 1e-6 is ~17 roundings, one
    # test image 1/len(test_files), so only the same predictions on the same images match.
    assert again["accuracy"] == pytest.approx(metrics["phase2"]["test"]["accuracy"], abs=1e-6)
