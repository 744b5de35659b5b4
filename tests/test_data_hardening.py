"""Hostile or careless data folders: refused with one clear error, or skipped and listed.

Each test reproduces a failure of the earlier readers: CSV paths that escaped the data folder,
CSVs from Excel (byte-order mark) or in Latin-1, blank lines that shifted line numbers, duplicate
rows, a file name that is not UTF-8, a class folder linking back to its split, one class, and a
--validation_fraction that left nothing to train on. Most call the readers in-process on tiny
folders of real PNGs; the CSV escape and the single class also run `run.py` as a user does.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from fashion_small_tfds import FashionMnistSmall

from helpers import FASHION_MINI, QUICKSTART, run_tlkeras
from tlkeras import data
from tlkeras.config import Config
from tlkeras.errors import ConfigError


def load(config: Config, image_size: int = 8) -> data.DataSplits:
    labels = data.LABEL_NUMBERS if config.model.task == "regression" else data.LABEL_CLASSES
    return data.load(config.data, labels, config.runtime.seed, image_size)


def copy_images(folder, count: int, source_class: str = "Bag") -> list:
    """`count` real Fashion-MNIST PNGs of `source_class` copied into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    images = sorted((FASHION_MINI / "train" / source_class).iterdir())[:count]
    for image in images:
        shutil.copy(image, folder / image.name)
    return [folder / image.name for image in images]


def class_folders(root, per_class: dict[str, int]):
    """root/train/<class>/ with that many real images of the same Fashion-MNIST class each."""
    for class_name, count in per_class.items():
        copy_images(root / "train" / class_name, count, class_name)
    return root


def regression_folder(root, csv_text, encoding: str = "utf-8"):
    """root/train/ with four real images (00.png ... 03.png) and root/train.csv."""
    for i, image in enumerate(copy_images(root / "train", 4)):
        image.rename(root / "train" / f"{i:02d}.png")
    csv_bytes = csv_text if isinstance(csv_text, bytes) else csv_text.encode(encoding)
    (root / "train.csv").write_bytes(csv_bytes)
    return root


def regression_config(root, **values) -> Config:
    return Config.of(image_dir=str(root), task="regression", test_split="", **values)


GOOD_ROWS = "path,value\n00.png,1\n01.png,2\n02.png,3\n03.png,4\n"


# 1. CSV paths that leave the split folder.

@pytest.fixture
def private_image(tmp_path):
    """A real image outside --image_dir that a CSV must not be able to reach."""
    return copy_images(tmp_path / "private", 1, "Coat")[0]


@pytest.mark.parametrize("listed", ["absolute", "dotdot", "symlink"])
def test_csv_path_outside_the_split_folder_is_refused(tmp_path, private_image, listed):
    root = tmp_path / "images"
    (root / "train").mkdir(parents=True)
    os.symlink(private_image, root / "train" / "link.png")
    path = {"absolute": str(private_image), "dotdot": "../../private/" + private_image.name,
            "symlink": "link.png"}[listed]
    regression_folder(root, f"path,value\n00.png,1\n{path},2\n01.png,3\n02.png,4\n")
    with pytest.raises(ConfigError, match=r"^train_split: .*train\.csv, line 3: the image path "
                                          r".* leads outside .*train/ \(absolute.*\)\. List "
                                          r"each image by its path relative to .*train/"):
        load(regression_config(root))


def test_csv_paths_inside_the_split_folder_still_load(tmp_path):
    root = regression_folder(tmp_path, "path,value\n00.png,1\n./01.png,2\nsub/../02.png,3\n"
                                       "03.png,4\n")
    splits = load(regression_config(root, validation_fraction=0.25))
    assert splits.sizes == {"train": 3, "validation": 1} and splits.skipped_files == []


def test_csv_paths_are_read_as_resolved_not_as_written(tmp_path):
    """`deep/../../00.png` with `deep -> a/b` resolves to train/00.png, but a reader that
    collapses `..` first (TensorFlow's) would open <image_dir>/00.png, outside the split."""
    from tlkeras.data.regression_csv import _read_targets_csv

    root = regression_folder(tmp_path, "path,value\ndeep/../../00.png,1\n01.png,2\n")
    (root / "train" / "a" / "b").mkdir(parents=True)
    os.symlink("a/b", root / "train" / "deep")
    shutil.copy(copy_images(tmp_path / "private", 1, "Coat")[0], root / "00.png")
    files, _ = _read_targets_csv(str(root), "train", "train_split")
    assert [path for path, _ in files] == [str(root / "train" / "00.png"),
                                           str(root / "train" / "01.png")]


# 2. Encodings, line numbers, duplicates.

def test_csv_saved_by_excel_with_a_byte_order_mark_is_accepted(tmp_path):
    root = regression_folder(tmp_path, GOOD_ROWS.encode("utf-8-sig"))
    assert load(regression_config(root)).output_names == ["value"]


def test_latin1_csv_is_a_clear_error_naming_the_file_and_line(tmp_path):
    root = regression_folder(tmp_path, GOOD_ROWS + "\n\u00e9t\u00e9.png,5\n", "latin-1")
    with pytest.raises(ConfigError, match=r"^train_split: .*train\.csv, line 7: not UTF-8 "
                                          r"text\. Save it as UTF-8"):
        load(regression_config(root))


def test_errors_name_the_real_line_after_blank_lines(tmp_path):
    root = regression_folder(tmp_path, "path,value\n00.png,1\n\n\n01.png,oops\n")
    with pytest.raises(ConfigError, match=r"train\.csv, line 5: expected an image path"):
        load(regression_config(root))


@pytest.mark.parametrize("second, differ", [("7", "different"), ("1", "the same")])
def test_an_image_listed_twice_is_refused_naming_both_lines(tmp_path, second, differ):
    root = regression_folder(tmp_path, f"path,value\n00.png,1\n01.png,2\n./00.png,{second}\n")
    with pytest.raises(ConfigError, match=rf"train\.csv, lines 2 and 4 list the same image "
                                          rf"'00\.png' with {differ} targets\. List each"):
        load(regression_config(root))


# 3. A file name that is not UTF-8.

def test_a_file_name_that_is_not_utf8_is_skipped_and_listed(tmp_path):
    root = class_folders(tmp_path, {"Bag": 3, "Coat": 3})
    bag = os.fsencode(root / "train" / "Bag")
    shutil.copy(os.fsencode(next((root / "train" / "Bag").iterdir())), bag + b"/caf\xe9.png")
    splits = load(Config.of(image_dir=str(root), test_split="", validation_fraction=0.2))
    assert splits.skipped_files == [f"{root}/train/Bag/caf\\xe9.png"]
    assert splits.sizes["train"] + splits.sizes["validation"] == 6


# 4. Class folders that are links back to the split, nested subfolders.

def test_class_folder_linking_back_to_the_split_is_refused(tmp_path):
    root = class_folders(tmp_path, {"Bag": 2, "Coat": 2})
    os.symlink("../train", root / "train" / "Loop")
    with pytest.raises(ConfigError, match=r"^image_dir: class folder .*Loop' is a symbolic link "
                                          r"to .*train', which holds the split folder itself"):
        load(Config.of(image_dir=str(root), test_split=""))


def test_symlink_loop_and_aliased_class_folders_are_refused(tmp_path):
    root = class_folders(tmp_path, {"Bag": 2, "Coat": 2})
    os.symlink("Bag", root / "train" / "Purse")
    with pytest.raises(ConfigError, match=r"class folders 'Bag' and 'Purse' .* hold the same"):
        load(Config.of(image_dir=str(root), test_split=""))
    os.remove(root / "train" / "Purse")
    os.symlink("b", root / "train" / "a")
    os.symlink("a", root / "train" / "b")
    with pytest.raises(ConfigError, match=r"^image_dir: .*train/[ab]' is a symbolic-link loop"):
        load(Config.of(image_dir=str(root), test_split=""))


def test_images_in_nested_subfolders_belong_to_the_class(tmp_path):
    """The documented choice, as Keras' image_dataset_from_directory: nested images count."""
    root = class_folders(tmp_path, {"Bag": 2, "Coat": 2})
    copy_images(root / "train" / "Bag" / "sub", 3, "Sandal")
    for class_name in ("Bag", "Coat"):
        copy_images(root / "validation" / class_name, 1, class_name)
    splits = load(Config.of(image_dir=str(root), test_split="", validation_split="validation"))
    labels = np.concatenate([label for _, label in splits.train.in_order()])
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 2


# 5. One class.

def test_a_single_class_is_refused(tmp_path):
    root = class_folders(tmp_path, {"Bag": 3})
    with pytest.raises(ConfigError, match=r"^image_dir: .*train' has one class folder \('Bag'\); "
                                          r"classification needs at least 2 classes"):
        load(Config.of(image_dir=str(root), test_split=""))


class FashionBagsSmall(FashionMnistSmall):
    """A real TFDS dataset with a one-class ClassLabel: the Bag images alone."""

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, supervised_keys=("image", "label"),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(names=["Bag"])}))


def test_a_single_class_tfds_dataset_is_refused(tmp_path, small_image_dir):
    bags = tmp_path / "bags"
    for split in ("train", "test"):
        shutil.copytree(small_image_dir / split / "Bag", bags / split / "Bag")
    FashionBagsSmall.source_dir = bags
    with pytest.raises(ConfigError, match=r"^dataset: TFDS dataset 'fashion_bags_small' has 1 "
                                          r"class \(Bag\); classification needs at least 2"):
        load(Config.of(dataset="fashion_bags_small", data_dir=str(tmp_path / "tfds")))


# 6. A validation fraction that leaves a class without training images.

def test_validation_fraction_leaving_a_class_without_training_images_is_refused(tmp_path):
    root = class_folders(tmp_path, {"Bag": 1, "Coat": 1})
    with pytest.raises(ConfigError, match=r"^validation_fraction: --validation_fraction=0\.9 "
                                          r"holds out 2 of the 2 readable training images .*"
                                          r"2 classes with 1 image\(s\) each\. Every class needs "
                                          r"at least 1 training image"):
        load(Config.of(image_dir=str(root), test_split="", validation_fraction=0.9))
    with pytest.raises(ConfigError, match=r"leaves class\(es\) '(Bag|Coat)' with no training"):
        load(Config.of(image_dir=str(root), test_split="", validation_fraction=0.1))


def test_validation_fraction_leaving_no_regression_image_is_refused(tmp_path):
    root = regression_folder(tmp_path, GOOD_ROWS)
    with pytest.raises(ConfigError, match=r"^validation_fraction: .*holds out 4 of the 4 "
                                          r".*leaves no training image; .* 4 image\(s\)"):
        load(regression_config(root, validation_fraction=0.9))


# The same refusals from the command line: exit 2, one paragraph, no run folder.

def run_bad(tmp_path, weights_path, image_dir, *flags):
    return run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                       f"--image_dir={image_dir}", f"--output_dir={tmp_path / 'runs'}",
                       "--run_name=bad", "--image_size=32", "--epochs=1",
                       "--fine_tune_epochs=1", *flags)


def assert_refused(process, tmp_path, flag: str, *phrases: str) -> None:
    assert process.returncode == 2, process.stderr[-3000:]
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith(f"tlkeras: error: --{flag}: "), process.stderr[-3000:]
    for phrase in phrases:
        assert phrase in message, message
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "runs" / "bad").exists()


def test_command_line_refuses_a_csv_path_outside_the_data_folder(tmp_path, weights_path,
                                                                  private_image):
    # The reproduction: the private image was trained on and put in the export's warm-up.
    root = regression_folder(tmp_path / "images", f"path,value\n00.png,1\n{private_image},2\n"
                                                  "01.png,3\n02.png,4\n03.png,5\n")
    process = run_bad(tmp_path, weights_path, root, "--task=regression", "--test_split=")
    assert_refused(process, tmp_path, "train_split", f"{root / 'train.csv'}, line 3",
                   "leads outside", "relative to")


def test_command_line_refuses_a_single_class(tmp_path, weights_path):
    # The reproduction: it trained and exported, reporting accuracy 1.0 (0.0000 in the summary).
    root = class_folders(tmp_path / "images", {"Bag": 4})
    copy_images(root / "test" / "Bag", 2)
    process = run_bad(tmp_path, weights_path, root)
    assert_refused(process, tmp_path, "image_dir", "one class folder ('Bag')",
                   "at least 2 classes")
