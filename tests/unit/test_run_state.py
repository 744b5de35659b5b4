"""metrics.json as a typed record with an explicit status."""

import json

from tlkeras.training import run_state
from tlkeras.training.run_state import FAILED, FINISHED, RUNNING, RunRecord


def test_record_round_trips_with_its_status(tmp_path):
    record = RunRecord(str(tmp_path), description={"backbone": "MobileNetV2"})
    record.phases["phase1"] = {"epochs": 2}
    record.save()
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored == {"backbone": "MobileNetV2", "status": RUNNING, "phase1": {"epochs": 2}}
    loaded = RunRecord.load(str(tmp_path))
    loaded.artifacts["export"] = "export/1"
    loaded.finish()
    assert RunRecord.load(str(tmp_path)) == loaded
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == FINISHED


def test_a_failed_run_keeps_its_error(tmp_path):
    record = RunRecord(str(tmp_path))
    record.fail("phase2 stopped in epoch 3")
    loaded = RunRecord.load(str(tmp_path))
    assert (loaded.status, loaded.error) == (FAILED, "phase2 stopped in epoch 3")


def test_runs_written_before_status_existed_get_one(tmp_path):
    run_state.write_json(str(tmp_path / "metrics.json"), {"export": "runs/x/export/1"})
    assert RunRecord.load(str(tmp_path)).status == FINISHED
    run_state.write_json(str(tmp_path / "metrics.json"), {"error": "diverged"})
    assert RunRecord.load(str(tmp_path)).status == FAILED
    assert RunRecord.load(str(tmp_path / "none")).status == RUNNING


def test_final_phase_is_phase2_unless_skipped(tmp_path):
    record = RunRecord(str(tmp_path), phases={"phase1": {"test": {"accuracy": 0.5}}})
    assert record.final_phase()["test"]["accuracy"] == 0.5
    record.phases["phase2"] = {"test": {"accuracy": 0.7}}
    assert record.final_phase()["test"]["accuracy"] == 0.7
