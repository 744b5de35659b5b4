"""--distill_from: a student learns from a real trained teacher export, through both phases.

The teacher is the session's end-to-end run (MobileNetV2 at 96 px on the committed images). The
slow comparison with a labels-only student is in test_distill_slow.py.
"""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tlkeras.model.network  # noqa: F401  (registers tlkeras' layer and losses for load_model)
from helpers import CHANCE, QUICKSTART, assert_close_at_scale, run_tlkeras
from tlkeras import data
from tlkeras.config import Config, validate
from tlkeras.data.sources import LABEL_CLASSES
from tlkeras.errors import ConfigError
from tlkeras.model import losses
from tlkeras.tasks import distillation


def test_distillation_loss_matches_its_formula():
    rng = np.random.default_rng(0)
    student = rng.dirichlet(np.ones(4), size=3).astype(np.float32)
    teacher = rng.dirichlet(np.ones(4), size=3).astype(np.float32)
    labels = np.array([0, 2, 3])
    packed = np.concatenate([labels[:, None].astype(np.float32), teacher], axis=1)
    temperature, alpha = 3.0, 0.25

    def soften(p):
        z = np.log(p) / temperature
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    hard = -np.log(student[np.arange(3), labels])
    kl = (soften(teacher) * np.log(soften(teacher) / soften(student))).sum(axis=1)
    expected = np.mean(alpha * hard + (1 - alpha) * temperature ** 2 * kl)
    loss = losses.DistillationLoss(temperature, alpha)
    # float32 logs, exps and sums of a dozen values against float64: some tens of roundings
    # (6e-8 each) relative to the loss; a wrong term or factor is off by far more than 1e-5.
    assert float(loss(packed, student)) == pytest.approx(expected, rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(restored(packed, student)) == pytest.approx(expected, rel=1e-5)
    accuracy = losses.distillation_accuracy(packed, student)
    np.testing.assert_array_equal(accuracy, (student.argmax(axis=1) == labels).astype(float))


@pytest.fixture(scope="module")
def teacher(trained_run):
    _, run_dir = trained_run
    labels = (run_dir / "labels.txt").read_text().splitlines()
    return distillation.load_teacher(str(run_dir), labels), run_dir


class CountingTeacher(distillation.Teacher):
    """The real teacher export, counting the images it is asked about (in a variable, so the
    count also runs inside the compiled function that calls it)."""

    images_seen = tf.Variable(0)

    def probabilities(self, images):
        CountingTeacher.images_seen.assign_add(tf.shape(images)[0])
        return super().probabilities(images)


def test_labels_carry_the_teachers_outputs_computed_once(teacher, small_image_dir, tmp_path):
    loaded, _ = teacher
    counting = CountingTeacher(loaded.path, loaded.serve, loaded.image_size, loaded.parameters,
                               loaded.saved_model)
    config = Config.of(image_dir=str(small_image_dir), batch_size=16, image_size=64)
    plain = data.load(config.data, LABEL_CLASSES, config.runtime.seed, image_size=64)
    splits = distillation.with_teacher_outputs(plain, counting, config.data.cache_memory_mb,
                                               str(tmp_path))
    images, packed = (np.concatenate(parts) for parts in zip(
        *[(x.numpy(), y.numpy()) for x, y in splits.train.in_order()], strict=True))
    _, labels = (np.concatenate(parts) for parts in zip(
        *[(x.numpy(), y.numpy()) for x, y in plain.train.in_order()], strict=True))
    np.testing.assert_array_equal(packed[:, 0], labels)
    expected = loaded.serve(image=tf.image.resize(images, (96, 96)))["probabilities"].numpy()
    # Batches of 16 against all images in one call take other kernels: the probabilities are
    # equal up to float32 reordering, relative to their own scale (<= 1).
    assert_close_at_scale(packed[:, 1:], expected)
    seen_after_first_pass = int(CountingTeacher.images_seen.numpy())
    assert seen_after_first_pass == len(images) + plain.sizes["validation"]
    for _ in splits.train.epochs(0, 2):
        pass
    # Cached: no second teacher run.
    assert int(CountingTeacher.images_seen.numpy()) == seen_after_first_pass
    assert splits.test is plain.test  # The test split keeps plain labels.


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_a_student_distils_through_both_phases_and_reports_against_its_teacher(
        teacher, small_image_dir, weights_path, tmp_path):
    _, teacher_dir = teacher
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--image_dir={small_image_dir}", f"--output_dir={tmp_path}",
                          "--run_name=student", "--image_size=48", "--epochs=3",
                          "--fine_tune_epochs=1", f"--distill_from={teacher_dir}",
                          "--distill_temperature=2", "--distill_alpha=0.5")
    assert process.returncode == 0, process.stderr[-5000:]
    run_dir = tmp_path / "student"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["phase1"]["history"]["loss"][-1] < metrics["phase1"]["history"]["loss"][0]
    assert metrics["phase2"]["test"]["accuracy"] > 3 * CHANCE
    comparison = metrics["distillation"]
    assert comparison["temperature"] == 2 and comparison["alpha"] == 0.5
    assert comparison["teacher"]["image_size"] == 96 and comparison["student"]["image_size"] == 48
    assert comparison["teacher"]["parameters"] == comparison["student"]["parameters"] > 2e6
    assert comparison["teacher"]["test_accuracy"] > 5 * CHANCE
    assert comparison["student"]["images_per_second"] > 0
    assert "Distillation teacher: test accuracy" in process.stdout
    assert not (run_dir / distillation.CACHE_DIR).exists()
    best = keras.models.load_model(run_dir / "checkpoints" / "best.keras")  # Distillation loss.
    assert best.output.shape[-1] == 10
    assert (run_dir / "export" / "1" / "saved_model.pb").is_file()


def test_teacher_with_other_classes_or_no_export_is_refused(teacher, small_image_dir, tmp_path):
    _, teacher_dir = teacher
    with pytest.raises(ConfigError, match="^distill_from: the teacher's classes"):
        distillation.load_teacher(str(teacher_dir), ["Bag", "Coat"])
    with pytest.raises(ConfigError, match="^distill_from: .* holds no tlkeras export"):
        distillation.load_teacher(str(tmp_path), ["Bag"])
    fewer = tmp_path / "fewer"
    for split in ("train", "test"):
        for name in ("Bag", "Coat"):
            shutil.copytree(small_image_dir / split / name, fewer / split / name)
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--image_dir={fewer}",
                          f"--output_dir={tmp_path / 'runs'}", "--run_name=bad",
                          "--weights=none", "--image_size=32", f"--distill_from={teacher_dir}")
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(
        "tlkeras: error: --distill_from: the teacher's classes")
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"task": "regression"}, "^distill_from: distillation trains a classifier"),
    ({"distill_temperature": 0.0}, "^distill_temperature: must be positive"),
    ({"distill_alpha": 1.5}, r"^distill_alpha: must be in \[0, 1\]"),
])
def test_bad_distillation_flags_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(Config.of(image_dir="images", distill_from="runs/teacher", **overrides))
