"""What the head learns: one module per task, one registry line each.

`--task` names an entry of `REGISTRY`; a run with `--distill_from` trains a classifier with
`Distillation` instead. Adding a task means writing one `Task` subclass (see `tasks.base`) in a
new module, adding its line here and its name to `tlkeras.config.TASKS` (a test checks that the
two agree). Modules are imported on first use, so `--help` does not load Keras.
"""

import importlib

REGISTRY = {
    "classification": "tlkeras.tasks.classification:Classification",
    "regression": "tlkeras.tasks.regression:Regression",
}
DISTILLATION = "tlkeras.tasks.distillation:Distillation"


def task_class(name: str):
    """The `Task` subclass registered under `name`."""
    return _load(REGISTRY[name])


def run_task_class(config):
    """The task class a run's config asks for (`tlkeras.config.Config`)."""
    return _load(DISTILLATION) if config.distill.distill_from else task_class(config.model.task)


def make_task(config, splits):
    """The run's task, fitted to its data (class names, target statistics, a teacher)."""
    return run_task_class(config).create(config, splits)


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)
