"""The run's state as a typed record with an explicit status, written to metrics.json.

`status` is `running` from the first write, `finished` once the export and every result are
written, `failed` when training stopped itself (the error says why). A run stopped from outside
(a full disk) stays `running`, so the same command resumes it; its `error` is noted until then.
Tools and the no-overwrite check read the status instead of guessing it from which keys are
present. The JSON keeps its flat layout: the run's description, `status`, one object per
finished phase, the artifacts (`export`, `tflite`, task extras such as `distillation`), `resumed`
restarts and any `error`.
"""

import dataclasses
import json
import os

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
METRICS_FILE = "metrics.json"
PHASES = ("phase1", "phase2")
_RECORD_KEYS = ("status", "resumed", "error")


@dataclasses.dataclass
class RunRecord:
    """metrics.json of one run folder."""

    run_dir: str
    description: dict = dataclasses.field(default_factory=dict)  # Config, data, model, task.
    status: str = RUNNING
    phases: dict = dataclasses.field(default_factory=dict)  # "phase1", "phase2": results.
    artifacts: dict = dataclasses.field(default_factory=dict)  # "export", "tflite", ...
    resumed: list = dataclasses.field(default_factory=list)  # Where each restart picked up.
    error: str | None = None

    @property
    def path(self) -> str:
        return os.path.join(self.run_dir, METRICS_FILE)

    @classmethod
    def load(cls, run_dir: str) -> "RunRecord":
        """The record in `run_dir`, or an empty running one before the first write."""
        stored = read_metrics(run_dir)
        record = cls(run_dir, status=stored.get("status", _legacy_status(stored)),
                     resumed=stored.get("resumed", []), error=stored.get("error"))
        for key, value in stored.items():
            if key in PHASES:
                record.phases[key] = value
            elif key in ("export", "tflite", "distillation"):
                record.artifacts[key] = value
            elif key not in _RECORD_KEYS:
                record.description[key] = value
        return record

    def as_json(self) -> dict:
        optional = {"resumed": self.resumed} if self.resumed else {}
        if self.error is not None:
            optional["error"] = self.error
        return {**self.description, "status": self.status, **self.phases, **self.artifacts,
                **optional}

    def save(self) -> None:
        write_json(self.path, self.as_json())

    def fail(self, error: str) -> None:
        self.status, self.error = FAILED, error
        self.save()

    def note_interruption(self, error: str) -> None:
        """Records why the run stopped from outside (a full disk), keeping it resumable; if even
        this write fails, the error still reaches the user on stderr."""
        self.error = error
        try:
            self.save()
        except OSError:
            pass

    def finish(self) -> None:
        self.status = FINISHED
        self.save()

    def final_phase(self) -> dict:
        """The last phase that ran: phase 2 unless it was skipped."""
        return self.phases.get("phase2", self.phases.get("phase1", {}))


def _legacy_status(stored: dict) -> str:
    """Runs written before `status` existed: an export meant finished, an error failed."""
    return FINISHED if "export" in stored else FAILED if "error" in stored else RUNNING


def read_metrics(run_dir: str) -> dict:
    """The run's metrics.json, or {} before the first phase has written it."""
    try:
        with open(os.path.join(run_dir, METRICS_FILE)) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def write_json(path: str, data: dict) -> None:
    """Writes JSON atomically, so a killed run never leaves a half-written file."""
    temporary = f"{path}.partial"
    try:
        with open(temporary, "w") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    finally:  # A full disk: no half-written .partial is left to confuse the next start.
        if os.path.exists(temporary):
            os.remove(temporary)
