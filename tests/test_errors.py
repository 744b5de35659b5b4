"""Bad input: a one-paragraph error naming the flag, a non-zero exit, nothing written or lost."""

import pytest

from helpers import FASHION_MINI, QUICKSTART, run_tlkeras
from tlkeras.config import Config, validate
from tlkeras.errors import ConfigError
from tlkeras.training import run_dir as rundir


def quickstart(tmp_path, weights_path, *overrides):
    """The quickstart command into tmp_path, with later flags overriding the file."""
    return run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                       f"--image_dir={FASHION_MINI}", f"--output_dir={tmp_path / 'runs'}",
                       "--run_name=bad", "--epochs=1", "--fine_tune_epochs=1", *overrides)


def assert_clean_failure(process, flag: str, *phrases: str):
    assert process.returncode != 0
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith(f"tlkeras: error: --{flag}"), process.stderr[-3000:]
    for phrase in phrases:
        assert phrase in message
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize("overrides, flag, phrases", [
    (["--backbone=ResNet9000"], "backbone", ["ResNet9000", "MobileNetV3Small", "ConvNeXtTiny"]),
    (["--image_dir=", "--dataset=no_such_dataset_xyz"], "dataset", ["no_such_dataset_xyz"]),
    (["--image_dir=/nonexistent/images"], "image_dir", ["/nonexistent/images/train"]),
    (["--image_size=16"], "image_size", ["16", "at least 32"]),
    (["--image_size=10000"], "image_size", ["10000", "at most 896"]),  # Ran out of memory.
    (["--unfreeze=1000"], "unfreeze", ["1000", "153"]),
    (["--unfreeze=no_such_layer"], "unfreeze", ["no_such_layer", "block_16_project"]),
    (["--unfreeze=1.5"], "unfreeze", ["(0, 1]"]),
    (["--weights=/nonexistent/backbone.weights.h5"], "weights", ["none"]),
    (["--optimizer=adamm"], "optimizer", ["adamm"]),
], ids=lambda value: value if isinstance(value, str) else None)
def test_bad_flag_fails_before_anything_is_written(tmp_path, weights_path, overrides, flag,
                                                   phrases):
    process = quickstart(tmp_path, weights_path, *overrides)
    assert_clean_failure(process, flag, *phrases)
    assert not (tmp_path / "runs" / "bad").exists()


def test_offline_imagenet_download_tells_user_to_pass_a_file_or_none(tmp_path, weights_path):
    # A dead proxy makes the download fail the same way with or without a network; an empty
    # KERAS_HOME makes sure no cached file answers instead.
    process = run_tlkeras(
        f"--flagfile={QUICKSTART}", f"--image_dir={FASHION_MINI}", "--weights=imagenet",
        f"--output_dir={tmp_path / 'runs'}", "--run_name=bad",
        env={"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
             "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
             "http_proxy": "http://127.0.0.1:9"})
    assert_clean_failure(process, "weights", "ImageNet", "--weights=none", ".weights.h5")
    assert not (tmp_path / "runs" / "bad").exists()


def test_empty_class_folder(tmp_path, weights_path, small_image_dir):
    empty_class = small_image_dir / "train" / "Zebra"
    empty_class.mkdir()
    try:
        process = quickstart(tmp_path, weights_path, f"--image_dir={small_image_dir}")
    finally:
        empty_class.rmdir()
    assert_clean_failure(process, "image_dir", "Zebra", "holds no image")


def test_unwritable_output_dir(tmp_path, weights_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    process = quickstart(tmp_path, weights_path, f"--output_dir={blocker / 'runs'}")
    assert_clean_failure(process, "output_dir", str(blocker / "runs"))


def test_finished_run_is_never_overwritten(tmp_path, weights_path):
    earlier = tmp_path / "runs" / "bad"
    earlier.mkdir(parents=True)
    (earlier / "run.json").write_text("{}")
    finished = '{"status": "finished", "export": "runs/bad/export/1"}'
    (earlier / "metrics.json").write_text(finished)
    process = quickstart(tmp_path, weights_path)
    assert_clean_failure(process, "run_name", str(earlier), "a finished run", "never overwrites",
                         "--fresh_run")
    assert sorted(path.name for path in earlier.iterdir()) == ["metrics.json", "run.json"]
    assert (earlier / "metrics.json").read_text() == finished


@pytest.mark.parametrize("started_with, metrics, described", [
    ({}, '{"status": "failed", "phase1": {}, "error": "phase2 stopped in epoch 2"}',
     "a run that stopped with an error (phase2 stopped in epoch 2)"),
    ({"epochs": 3}, '{"status": "running", "phase1": {}}',
     "started with other flags: --epochs=3 (now 5)"),
    (None, '{"status": "running", "phase1": {}}', "something other than a tlkeras run"),
], ids=["failed", "other-flags", "not-tlkeras"])
def test_run_dir_resumes_only_the_same_commands_unfinished_run(tmp_path, started_with, metrics,
                                                               described):
    config = Config.of(image_dir="images", output_dir=str(tmp_path), run_name="run", epochs=5)
    run_dir = rundir.create(config.replace(**(started_with or {})), rundir.run_dir_path(config))
    if started_with is None:
        (tmp_path / "run" / "run.json").unlink()
    (tmp_path / "run" / "metrics.json").write_text(metrics)
    with pytest.raises(ConfigError, match="^run_name: ") as refused:
        rundir.check_available(config, run_dir)
    assert described in str(refused.value) and "--fresh_run" in str(refused.value)
    (tmp_path / "run" / "metrics.json").write_text('{"status": "running", "phase1": {}}')
    if started_with == {}:  # The same command's unfinished run: resume it.
        assert rundir.check_available(config, run_dir) is True


def test_fresh_run_starts_beside_an_existing_run(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad-2").mkdir()
    config = Config.of(image_dir="x", output_dir=str(tmp_path), run_name="bad", fresh_run=True)
    assert rundir.run_dir_path(config) == str(tmp_path / "bad-3")
    assert rundir.run_dir_path(config.replace(fresh_run=False)) == str(tmp_path / "bad")


def test_missing_flagfile(tmp_path):
    process = run_tlkeras(f"--flagfile={tmp_path / 'missing.cfg'}")
    assert process.returncode != 0
    assert "missing.cfg" in process.stderr and "flagfile" in process.stderr.lower()
    assert "Traceback" not in process.stderr


def test_exactly_one_data_source(tmp_path):
    from tlkeras.cli.evaluate import evaluate_export

    for config in (Config(), Config.of(dataset="cifar10", image_dir="images")):
        with pytest.raises(ConfigError, match="^dataset: give exactly one data source"):
            validate(config)
        # `tlkeras evaluate` refuses it the same way, before it looks at the model.
        with pytest.raises(ConfigError, match="^dataset: give exactly one data source"):
            evaluate_export(config.data, 5, str(tmp_path / "no_model"), "test",
                            str(tmp_path / "report"))


def test_non_finite_loss_stops_with_phase_and_epoch_and_keeps_the_last_good_checkpoint(
        tmp_path, weights_path, small_image_dir):
    import json

    import keras
    import numpy as np

    import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing)

    # A step of 3e38 (near float32's largest value) overflows the weights, so the loss is NaN.
    process = quickstart(tmp_path, weights_path, f"--image_dir={small_image_dir}",
                         "--image_size=32", "--fine_tune_epochs=2", "--fine_tune_optimizer=sgd",
                         "--fine_tune_learning_rate=3e38")
    assert process.returncode == 3, process.stderr[-3000:]
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith("tlkeras: training stopped: phase2 stopped in epoch 2: the "
                              "training loss became nan")
    assert "--fine_tune_learning_rate" in message and "Traceback" not in process.stderr
    run_dir = tmp_path / "runs" / "bad"
    checkpoint = run_dir / "checkpoints" / "best.keras"
    assert f"The last good checkpoint is kept: {checkpoint} (epoch " in message
    kept = keras.models.load_model(checkpoint)
    assert kept.input.shape[1:] == (32, 32, 3)
    assert all(np.isfinite(weight).all() for weight in kept.get_weights())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["error"] == message.removeprefix("tlkeras: training stopped: ")
    assert metrics["status"] == "failed"
    assert "test" in metrics["phase1"] and not (run_dir / "export").exists()


def test_multi_worker_without_a_cluster_says_how_to_describe_one(tmp_path, weights_path):
    process = quickstart(tmp_path, weights_path, "--strategy=multi_worker")
    assert_clean_failure(process, "strategy", "neither TF_CONFIG nor Slurm", "srun")
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "runs" / "bad").exists()
