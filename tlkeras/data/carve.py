"""One flat folder of class folders carved into train, validation and test, per class.

`keras.utils.image_dataset_from_directory`, TF Hub's make_image_classifier and Model Maker read
`<image_dir>/<class>/<image>` and split it with a seed. Here the carve is a pure function of the
listed files (sorted, with their class ids), the seed and the two fractions, so training, a
resumed run and `tlkeras evaluate` rebuild exactly the same splits from the flags that run.json
records; nothing else needs to be written. The carve is stratified: each class is shuffled by
its own seeded stream and split on its own, so every class is in every split once it has
enough images (1 training image first, then 1 for validation, then 1 for the test), and a
class's split does not depend on how many images the other classes have.

Files are carved as listed, before they are decoded: a file that does not decode drops out of
its own split only, and `tlkeras evaluate` decodes the split it evaluates, not the whole folder.
"""

import numpy as np

from tlkeras.errors import ConfigError

SPLITS = ("train", "validation", "test")  # The carved splits' names, for `tlkeras evaluate`.


def carve(files: list[tuple[str, int]], class_names: list[str], seed: int,
          validation_fraction: float,
          test_fraction: float | None) -> dict[str, list[tuple[str, int]]]:
    """{split: [(path, class id)]} for `SPLITS`, each in class order then seeded order.

    `test_fraction` None carves no test ("test" is then empty and its images train). Raises
    `ConfigError` naming the fraction when a class would be left without a training image.
    """
    by_class = {label: [] for label in range(len(class_names))}
    for path, label in files:
        by_class[label].append(path)
    carved = {split: [] for split in SPLITS}
    for label, name in enumerate(class_names):
        members = sorted(by_class[label])
        shuffled = [members[i] for i in np.random.default_rng([seed, label]).permutation(
            len(members))]
        held_validation, held_test = held_out(len(members), validation_fraction, test_fraction)
        if held_validation + held_test >= len(members):
            _refuse(name, len(members), held_validation + held_test, validation_fraction,
                    test_fraction)
        carved["test"] += [(path, label) for path in shuffled[:held_test]]
        carved["train"] += [(path, label) for path in
                            shuffled[held_test:len(members) - held_validation]]
        carved["validation"] += [(path, label) for path in
                                 shuffled[len(members) - held_validation:]]
    return carved


def held_out(count: int, validation_fraction: float,
             test_fraction: float | None) -> tuple[int, int]:
    """(validation, test) images of a class of `count`: each fraction rounded half up, and at
    least 1 once the class has an image for training and for the splits before it (2 images
    for validation, 3 for the test). Validation comes from one end of the class's seeded order
    and the test from the other, so turning the test off changes no validation image."""
    validation = _share(count, validation_fraction, 2)
    test = 0 if test_fraction is None else _share(count, test_fraction, 3)
    return validation, test


def _share(count: int, fraction: float, enough: int) -> int:
    share = int(count * fraction + 0.5)
    return max(share, 1) if count >= enough else share


def _refuse(class_name: str, count: int, held: int, validation_fraction: float,
            test_fraction: float | None) -> None:
    fractions = f"--validation_fraction={validation_fraction}" + (
        "" if test_fraction is None else f" and --test_fraction={test_fraction}")
    raise ConfigError("validation_fraction" if test_fraction is None else "test_fraction",
                      f"{fractions} {'holds' if test_fraction is None else 'hold'} out "
                      f"{held} of the {count} image(s) of class "
                      f"{class_name!r}, which leaves it no training image", "Every class "
                      "needs at least 1 training image: lower the fractions, or add images "
                      "to that class.")
