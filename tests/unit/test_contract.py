"""The export contract: versions, labels and paths resolved without TensorFlow."""

import subprocess
import sys

import pytest

from tlkeras.artifacts import contract
from tlkeras.artifacts.contract import ExportedModel
from tlkeras.errors import ConfigError


def fake_export(export_dir, *versions, labels=("a", "b")):
    """Version folders holding a saved_model.pb marker and a labels file."""
    for version in versions:
        folder = export_dir / str(version)
        folder.mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"")
        contract.write_labels(str(folder / contract.LABELS_FILE), list(labels))


def test_next_version_never_reuses_one(tmp_path):
    assert contract.next_version(str(tmp_path / "missing")) == 1
    fake_export(tmp_path, 1, 3)
    (tmp_path / ".partial-4").mkdir()  # A half-written export is not a version.
    assert contract.next_version(str(tmp_path)) == 4


@pytest.mark.parametrize("given", ["run", "run/export", "run/export/2"])
def test_a_run_folder_its_export_folder_or_a_version_open_the_newest(tmp_path, given):
    fake_export(tmp_path / "run" / "export", 1, 2)
    exported = ExportedModel.open(str(tmp_path / given))
    assert exported.path == str(tmp_path / "run" / "export" / "2")
    assert exported.labels() == ["a", "b"]


def test_no_export_names_the_flag(tmp_path):
    with pytest.raises(ConfigError) as refused:
        ExportedModel.open(str(tmp_path), flag="distill_from")
    assert refused.value.field == "distill_from"
    assert "no saved_model.pb" in str(refused.value)


def test_labels_round_trip_one_name_per_line(tmp_path):
    names = ["T-shirt top", "Ankle_boot", "élan"]
    path = contract.write_labels(str(tmp_path / "sub" / "labels.txt"), names)
    assert contract.read_labels(path) == names
    assert open(path).read() == "T-shirt top\nAnkle_boot\nélan\n"


def test_serving_tools_resolve_exports_without_importing_tensorflow():
    code = ("import sys, tlkeras.artifacts.contract, tlkeras.cli.rest_request, "
            "tlkeras.cli.predict, tlkeras.cli.main; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "[]"


def test_every_signature_has_its_own_input_name_and_serving_default_is_the_bytes_one():
    # TF Serving's REST row format names inputs; a name shared by two signatures would let a body
    # meant for one be accepted by the other with another meaning (bytes vs pixels).
    assert list(contract.SIGNATURE_INPUTS) == ["serving_default", "serving_pixels",
                                               "serving_uint8", "tf_example"]
    assert len(set(contract.SIGNATURE_INPUTS.values())) == len(contract.SIGNATURE_INPUTS)
    assert contract.SIGNATURE_INPUTS[contract.SERVING_SIGNATURE] == contract.IMAGE_BYTES_INPUT
