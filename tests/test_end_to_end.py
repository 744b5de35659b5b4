"""`run.py --flagfile=configs/quickstart.cfg` trains both phases on real images and learns."""

import json

import keras
import pytest

import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing for load_model)
from helpers import (
    CHANCE,
    E2E_PHASE1_EPOCHS,
    E2E_PHASE2_EPOCHS,
    FASHION_MINI,
    QUICKSTART,
    run_tlkeras,
)

TOTAL_EPOCHS = E2E_PHASE1_EPOCHS + E2E_PHASE2_EPOCHS


def test_prints_progress_for_both_phases_and_ends_with_accuracy_and_export(trained_run):
    process, run_dir = trained_run
    for epoch in range(1, TOTAL_EPOCHS + 1):
        assert f"Epoch {epoch}/" in process.stdout
    assert "phase2 test accuracy:" in process.stdout
    assert process.stdout.rstrip().splitlines()[-1] == f"SavedModel: {run_dir / 'export' / '1'}"


def test_model_learns_in_both_phases(trained_run):
    _, run_dir = trained_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    phase1_loss = metrics["phase1"]["history"]["loss"]
    assert len(phase1_loss) == E2E_PHASE1_EPOCHS
    assert phase1_loss[-1] < phase1_loss[0]
    assert metrics["phase1"]["test"]["accuracy"] > 5 * CHANCE
    assert len(metrics["phase2"]["history"]["loss"]) == E2E_PHASE2_EPOCHS
    assert metrics["phase2"]["test"]["accuracy"] > 5 * CHANCE
    assert metrics["phase2"]["unfrozen_layers"] == 40  # From configs/quickstart.cfg.
    assert metrics["phase1"]["feature_cache"].startswith("on: no random augmentation")


def test_run_dir_holds_labels_checkpoint_and_models(trained_run):
    _, run_dir = trained_run
    labels = (run_dir / "labels.txt").read_text().splitlines()
    assert labels == sorted(path.name for path in (FASHION_MINI / "train").iterdir())
    best = keras.models.load_model(run_dir / "checkpoints" / "best.keras")
    assert best.input.shape[1:] == (96, 96, 3)  # The full model, also when phase 1 fit the head.
    assert not (run_dir / "feature_cache").exists()
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "export" / "1" / "saved_model.pb").is_file()


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_phase_two_can_be_skipped(tmp_path, weights_path, small_image_dir):
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--image_dir={small_image_dir}", f"--output_dir={tmp_path}",
                          "--run_name=head_only", "--image_size=32", "--epochs=2",
                          "--fine_tune_epochs=0")
    assert process.returncode == 0, process.stderr[-5000:]
    metrics = json.loads((tmp_path / "head_only" / "metrics.json").read_text())
    assert "phase2" not in metrics and len(metrics["phase1"]["history"]["loss"]) == 2
    assert "Phase 2" not in process.stderr and "phase2 test" not in process.stdout
    assert (tmp_path / "head_only" / "export" / "1" / "saved_model.pb").is_file()


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_same_seed_gives_identical_metrics(tmp_path, weights_path, small_image_dir):
    runs = []
    for name in ("first", "second"):
        process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                              f"--image_dir={small_image_dir}", f"--output_dir={tmp_path}",
                              f"--run_name={name}", "--image_size=32", "--epochs=2",
                              "--fine_tune_epochs=1", "--seed=7")
        assert process.returncode == 0, process.stderr[-5000:]
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        runs.append({phase: (metrics[phase]["history"], metrics[phase]["test"])
                     for phase in ("phase1", "phase2")})
    assert runs[0] == runs[1]


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_broken_image_files_never_crash_a_run(tmp_path, weights_path, small_image_dir):
    import shutil

    images = tmp_path / "images"
    shutil.copytree(small_image_dir, images)
    (images / "train" / "Bag" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (images / "test" / "Coat" / "notes.png").write_text("not an image")
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--image_dir={images}", f"--output_dir={tmp_path}", "--run_name=messy",
                          "--image_size=32", "--epochs=1", "--fine_tune_epochs=1",
                          "--feature_cache=off")
    assert process.returncode == 0, process.stderr[-5000:]
    assert "Skipped 2 file(s) that do not decode as images" in process.stderr
    metrics = json.loads((tmp_path / "messy" / "metrics.json").read_text())
    assert sorted(metrics["skipped_files"]) == sorted(
        [str(images / "train" / "Bag" / "truncated.png"),
         str(images / "test" / "Coat" / "notes.png")])
