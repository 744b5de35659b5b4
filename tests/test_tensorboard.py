"""TensorBoard logs hold both phases on one epoch axis: loss, accuracy and learning rate."""

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import E2E_PHASE1_EPOCHS, E2E_PHASE2_EPOCHS

EPOCHS = list(range(E2E_PHASE1_EPOCHS + E2E_PHASE2_EPOCHS))


def scalars(run_dir, split: str) -> dict:
    """{tag: {step: value}} for every scalar in logs/<split> (TF2 scalars are tensor events)."""
    accumulator = EventAccumulator(str(run_dir / "logs" / split), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: {event.step: tf.make_ndarray(event.tensor_proto).item()
                  for event in accumulator.Tensors(tag)}
            for tag in accumulator.Tags()["tensors"]}


@pytest.mark.parametrize("split", ["train", "validation"])
def test_loss_and_accuracy_for_every_epoch_of_both_phases(trained_run, split):
    logged = scalars(trained_run[1], split)
    assert sorted(logged["epoch_loss"]) == EPOCHS
    assert sorted(logged["epoch_accuracy"]) == EPOCHS


def test_learning_rate_switches_at_phase_two(trained_run):
    learning_rate = scalars(trained_run[1], "train")["epoch_learning_rate"]
    assert sorted(learning_rate) == EPOCHS
    for epoch in EPOCHS:  # Rates from configs/quickstart.cfg.
        expected = 1e-3 if epoch < E2E_PHASE1_EPOCHS else 1e-4
        assert learning_rate[epoch] == pytest.approx(expected), epoch
