"""TensorBoard logs hold both phases on one epoch axis: loss, accuracy and learning rate."""

import pytest

from helpers import E2E_PHASE1_EPOCHS, E2E_PHASE2_EPOCHS
from helpers import tensorboard_scalars as scalars

EPOCHS = list(range(E2E_PHASE1_EPOCHS + E2E_PHASE2_EPOCHS))


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
        # The rate is logged as float32: one rounding (6e-8 relative), well within rel=1e-6.
        assert learning_rate[epoch] == pytest.approx(expected, rel=1e-6), epoch
