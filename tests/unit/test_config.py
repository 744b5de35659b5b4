"""Config groups and their flags: each default and help written once, each command its own flags."""

import dataclasses

import pytest
from absl import flags

from tlkeras import config as tlkeras_config
from tlkeras import tasks
from tlkeras.cli import evaluate, train
from tlkeras.cli import flags as config_flags
from tlkeras.config import GROUPS, Config, validate
from tlkeras.errors import ConfigError


def fresh_flags(define) -> flags.FlagValues:
    """Flags defined by `define(flag_values)` in a FlagValues of their own, parsed empty."""
    flag_values = flags.FlagValues()
    define(flag_values)
    flag_values(["prog"])
    return flag_values


def test_flat_names_route_to_their_groups_and_back():
    config = Config.of(image_dir="images", epochs=2, unfreeze="40", seed=0, top_k=3)
    assert (config.data.image_dir, config.phase1.epochs, config.phase2.unfreeze,
            config.runtime.seed, config.export.top_k) == ("images", 2, "40", 0, 3)
    flat = config.flat()
    assert Config.of(**flat) == config
    assert len(flat) == sum(len(dataclasses.fields(group)) for group in GROUPS.values())
    with pytest.raises(TypeError, match="no config field named 'epoch'"):
        Config.of(epoch=2)


def test_field_names_are_unique_across_groups_and_each_has_help():
    names = [field.name for group in GROUPS.values() for field in dataclasses.fields(group)]
    assert len(names) == len(set(names))
    for group in GROUPS.values():
        for field in dataclasses.fields(group):
            assert len(field.metadata["help"]) > 20, field.name


def test_training_flags_have_the_config_defaults_types_and_groups():
    flag_values = fresh_flags(lambda values: config_flags.define_all(values))
    assert config_flags.read_config(flag_values) == Config()
    assert flag_values["task"].flag_type() == "string enum"
    assert flag_values["task"].parser.enum_values == list(tlkeras_config.TASKS)
    assert flag_values["export_tflite"].value == []
    modules = flag_values.flags_by_module_dict()
    assert [name for name in modules if name.startswith("tlkeras (")] == [
        f"tlkeras ({number}) {group.TITLE}" for number, group in enumerate(GROUPS.values(), 1)]


def test_parsed_flags_become_the_config():
    flag_values = flags.FlagValues()
    config_flags.define_all(flag_values)
    flag_values(["prog", "--image_dir=x", "--export_tflite=float32,float16", "--nodeterministic",
                 "--augment_translate=0.1", "--task=regression"])
    config = config_flags.read_config(flag_values)
    assert config == Config.of(image_dir="x", export_tflite=("float32", "float16"),
                               deterministic=False, augment_translate=0.1, task="regression")


def test_evaluate_defines_only_its_own_flags():
    flag_values = flags.FlagValues()
    evaluate.define_flags(flag_values)
    assert set(flag_values) == {*evaluate.DATA_FLAGS, "top_k", "model", "split", "report_dir"}


def test_train_command_defines_every_field_plus_list_backbones():
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    assert set(flag_values) == {*Config().flat(), "list_backbones"}


def test_every_task_name_has_a_registered_task():
    assert tuple(tasks.REGISTRY) == tlkeras_config.TASKS
    for name in tlkeras_config.TASKS:
        assert tasks.task_class(name).name == name


@pytest.mark.parametrize("values, field, phrase", [
    ({}, "dataset", "exactly one data source"),
    ({"image_dir": "x", "dataset": "cifar10"}, "dataset", "exactly one data source"),
    ({"image_dir": "x", "batch_size": 0}, "batch_size", "must be positive"),
    ({"image_dir": "x", "validation_fraction": 1.0}, "validation_fraction", "(0, 1)"),
    ({"image_dir": "x", "dropout": 1.0}, "dropout", "[0, 1)"),
    ({"image_dir": "x", "epochs": 0}, "epochs", "at least 1 epoch"),
    ({"image_dir": "x", "unfreeze": "0"}, "unfreeze", ">= 1 layers"),
    ({"image_dir": "x", "unfreeze": "1.5"}, "unfreeze", "(0, 1]"),
    ({"image_dir": "x", "top_k": 0}, "top_k", ">= 1"),
    ({"image_dir": "x", "export_tflite": ("int4",)}, "export_tflite", "int4"),
    ({"image_dir": "x", "distill_temperature": 0.0}, "distill_temperature", "positive"),
    ({"image_dir": "x", "distill_from": "t", "task": "regression"}, "distill_from",
     "classifier"),
    ({"image_dir": "x", "strategy": "multi_worker"}, "run_name", "same run folder"),
    ({"image_dir": "x", "strategy": "multi_worker", "run_name": "r", "fresh_run": True},
     "run_name", "no --fresh_run"),
    ({"image_dir": "x", "worker_timeout": 0}, "worker_timeout", "positive"),
    # Each of these was accepted and ended in a traceback (or a NaN blamed on the learning rate).
    ({"image_dir": "x", "distill_temperature": float("inf")}, "distill_temperature", "finite"),
    ({"image_dir": "x", "fine_tune_learning_rate": float("inf")}, "fine_tune_learning_rate",
     "finite"),
    ({"image_dir": "x", "learning_rate": float("nan")}, "learning_rate", "finite"),
    ({"image_dir": "x", "shuffle_buffer": 0}, "shuffle_buffer", ">= 1"),
    ({"image_dir": "x", "seed": -1}, "seed", "[0, 2**32)"),
    ({"image_dir": "x", "seed": 5_000_000_000}, "seed", "[0, 2**32)"),
    ({"image_dir": "x", "max_image_megapixels": 0.0}, "max_image_megapixels", "positive"),
    ({"image_dir": "x", "run_name": "../../x"}, "run_name", "plain folder name"),
])
def test_invalid_settings_name_the_field(values, field, phrase):
    with pytest.raises(ConfigError) as refused:
        validate(Config.of(**values))
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ") and phrase in str(refused.value)
    assert refused.value.as_flag_message().startswith(f"--{field}: ")
