"""The `tlkeras` command: subcommands, usage, and errors as one paragraph with exit 2."""

from helpers import run_module


def test_without_a_command_it_prints_the_commands_and_exits_2():
    process = run_module("")
    assert process.returncode == 2
    for command in ("train", "predict", "evaluate", "rest-request", "offline-weights"):
        assert command in process.stderr


def test_train_help_lists_the_config_groups():
    process = run_module("train", "--helpfull")  # absl exits 1 after printing help.
    for group in ("tlkeras (1) data", "tlkeras (4) phase 2: fine-tuning",
                  "tlkeras (5) training (both phases)", "tlkeras (8) outputs and runtime"):
        assert group in process.stdout
    assert "--fine_tune_learning_rate" in process.stdout


def test_a_bad_setting_is_one_paragraph_naming_the_flag(tmp_path):
    process = run_module("train", f"--image_dir={tmp_path}", "--batch_size=0")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1].startswith(
        "tlkeras: error: --batch_size: must be positive")
    assert "Traceback" not in process.stderr


def test_evaluate_refuses_training_flags():
    process = run_module("evaluate", "--model=x", "--report_dir=y", "--epochs=3")
    assert process.returncode != 0
    assert "Unknown command line flag 'epochs'" in process.stderr
