"""The export is what a serving team deploys: TF Serving layout, signatures, warm-up, tools.

The SavedModel is checked in a fresh interpreter that imports only TensorFlow and NumPy, against
the Keras model on the same decoded pixels. Set TLKERAS_OLDER_TF_PYTHON to the python of a venv
with an older TensorFlow (the one a TF Serving release is built on) to check that it loads and
runs every signature too.
"""

import base64
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing for load_model)
from helpers import FASHION_MINI, FLOAT32_REORDERED, run_module
from tlkeras.artifacts import saved_model
from tlkeras.artifacts.contract import read_labels
from tlkeras.tasks.classification import Classification

PYTHON_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

# Runs in a fresh interpreter: only TensorFlow and NumPy, as on a serving host. Every signature
# gets the same files: serving_uint8 the client's decode of them, a batch per size (a batch has
# one size), tf_example them inside tf.train.Examples built here.
SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    export_dir, request_path, out_path = sys.argv[1:]
    request = json.load(open(request_path))
    model = tf.saved_model.load(export_dir)
    encoded = [open(p, "rb").read() for p in request["files"]]
    outputs = {
        "bytes": model.signatures["serving_default"](image_bytes=tf.constant(encoded)),
        "pixels": model.signatures["serving_pixels"](image=tf.constant(np.load(request["pixels"]))),
    }
    decoded = [tf.io.decode_image(e, channels=3, expand_animations=False).numpy() for e in encoded]
    by_size = {}
    for index, image in enumerate(decoded):
        by_size.setdefault(image.shape, []).append(index)
    uint8 = [None] * len(decoded)
    for indices in by_size.values():
        answer = model.signatures["serving_uint8"](
            image_tensor=tf.constant(np.stack([decoded[i] for i in indices])))
        for row, index in enumerate(indices):
            uint8[index] = {k: v.numpy()[row] for k, v in answer.items()}
    outputs["uint8"] = {k: np.stack([row[k] for row in uint8]) for k in uint8[0]}
    examples = [tf.train.Example(features=tf.train.Features(feature={"image/encoded":
        tf.train.Feature(bytes_list=tf.train.BytesList(value=[e]))})).SerializeToString()
        for e in encoded]
    outputs["example"] = model.signatures["tf_example"](examples=tf.constant(examples))
    np.savez(out_path, **{f"{source}_{k}": np.asarray(v) for source, answer in outputs.items()
                          for k, v in answer.items()})
    print(json.dumps({"signatures": sorted(model.signatures), "tensorflow": tf.__version__,
                      "batch_sizes": sorted(len(i) for i in by_size.values()),
                      "tlkeras_imported": any(m.startswith("tlkeras") for m in sys.modules)}))
""")
SIGNATURES = ["serving_default", "serving_pixels", "serving_uint8", "tf_example"]


@pytest.fixture(scope="module")
def served(trained_run):
    _, run_dir = trained_run
    model = keras.models.load_model(run_dir / "model.keras")
    labels = read_labels(run_dir / "labels.txt")
    return run_dir, run_dir / "export" / "1", model, labels


@pytest.fixture(scope="module")
def real_image_files(tmp_path_factory):
    """Real test images as PNG and JPEG files of several sizes, one class after another."""
    folder = tmp_path_factory.mktemp("images")
    files = []
    sizes = [(28, 28), (60, 45), (40, 40), (100, 80)]
    for index, class_dir in enumerate(sorted((FASHION_MINI / "test").iterdir())):
        image = tf.io.decode_png(tf.io.read_file(str(sorted(class_dir.iterdir())[0])),
                                 channels=3)
        height, width = sizes[index % len(sizes)]
        image = tf.cast(tf.image.resize(image, (height, width)), tf.uint8)
        for fmt, encode in (("png", tf.io.encode_png), ("jpg", tf.io.encode_jpeg)):
            path = folder / f"{class_dir.name}_{height}x{width}.{fmt}"
            path.write_bytes(encode(image).numpy())
            files.append(path)
    return files


def decoded_pixels(files, size: int) -> np.ndarray:
    """What the training pipeline feeds the model: decode_image, then bilinear resize."""
    return np.stack([tf.image.resize(tf.io.decode_image(tf.io.read_file(str(path)), channels=3,
                                                         expand_animations=False), (size, size))
                     for path in files])


def serve_in_a_fresh_process(python: str, version_dir, files, pixels, tmp_path):
    """Runs SERVE_SCRIPT with `python`; returns its report and {source_output: array}."""
    np.save(tmp_path / "pixels.npy", pixels)
    request = {"files": [str(path) for path in files], "pixels": str(tmp_path / "pixels.npy")}
    (tmp_path / "request.json").write_text(json.dumps(request))
    process = subprocess.run([python, "-c", SERVE_SCRIPT, str(version_dir),
                              str(tmp_path / "request.json"), str(tmp_path / "out.npz")],
                             capture_output=True, text=True, timeout=300, env=PYTHON_ENV)
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    return report, dict(np.load(tmp_path / "out.npz", allow_pickle=True))  # names: bytes


def assert_every_signature_matches_keras(out, expected, labels, count):
    """Each signature's outputs on the same images against Keras' probabilities."""
    for source in ("bytes", "pixels", "uint8", "example"):
        # Probabilities lie in [0, 1]: 1e-4 is ~1,600 float32 roundings at scale 1 (SavedModel
        # graph vs Keras reorder the same float32 sums), far below a wrong model's > 1e-2.
        assert np.abs(out[f"{source}_probabilities"] - expected).max() < FLOAT32_REORDERED
        np.testing.assert_array_equal(out[f"{source}_class_ids"], expected.argmax(axis=1))
        assert [name.decode() for name in out[f"{source}_class_names"]] == \
            [labels[i] for i in expected.argmax(axis=1)]
        np.testing.assert_array_equal(out[f"{source}_top_k_class_ids"][:, 0], expected.argmax(1))
        # The top score is a probability, in [0, 1]: the same 1e-4 (~1,600 roundings at scale 1).
        np.testing.assert_allclose(out[f"{source}_top_k_scores"][:, 0], expected.max(1),
                                   rtol=0, atol=FLOAT32_REORDERED)
        assert out[f"{source}_top_k_scores"].shape == (count, 5)


def test_every_signature_matches_keras_on_real_images_in_a_fresh_process(served,
                                                                         real_image_files,
                                                                         tmp_path):
    _, version_dir, model, labels = served
    pixels = decoded_pixels(real_image_files, model.input.shape[1])
    report, out = serve_in_a_fresh_process(sys.executable, version_dir, real_image_files, pixels,
                                           tmp_path)
    assert report["signatures"] == SIGNATURES and report["tlkeras_imported"] is False
    assert report["batch_sizes"] == [4, 4, 6, 6]  # serving_uint8: one batch per image size.
    assert_every_signature_matches_keras(out, model.predict(pixels, verbose=0), labels,
                                         len(real_image_files))
    # The same decoded uint8 pixels through the same resize: serving_uint8 and tf_example give
    # serving_default's input, and differ only by batch composition (float32 sums reordered).
    for source in ("uint8", "example"):
        assert np.abs(out[f"{source}_probabilities"] - out["bytes_probabilities"]).max() \
            < FLOAT32_REORDERED


@pytest.mark.skipif(not os.environ.get("TLKERAS_OLDER_TF_PYTHON"),
                    reason="TLKERAS_OLDER_TF_PYTHON (a venv's python with an older TensorFlow) "
                           "is not set")
def test_an_older_tensorflow_loads_and_runs_every_signature(served, real_image_files, tmp_path):
    # What TF Serving built on that TensorFlow does with the export: load it, run each signature.
    _, version_dir, model, labels = served
    pixels = decoded_pixels(real_image_files, model.input.shape[1])
    report, out = serve_in_a_fresh_process(os.environ["TLKERAS_OLDER_TF_PYTHON"], version_dir,
                                           real_image_files, pixels, tmp_path)
    assert report["signatures"] == SIGNATURES and report["tensorflow"] != tf.__version__
    assert_every_signature_matches_keras(out, model.predict(pixels, verbose=0), labels,
                                         len(real_image_files))


def test_saved_model_cli_shows_and_runs_the_serving_signature(served, real_image_files, tmp_path):
    _, version_dir, _, labels = served
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", str(version_dir), "--all"],
                           capture_output=True, text=True, timeout=300, env=PYTHON_ENV)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "MetaGraphDef with tag-set: 'serve' contains the following SignatureDefs" in shown.stdout
    default = shown.stdout.split("signature_def['serving_default']:")[1].split("signature_def[")[0]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" \
        in default
    for output in ("probabilities", "class_ids", "class_names", "top_k_scores",
                   "top_k_class_ids", "top_k_class_names"):
        assert f"outputs['{output}'] tensor_info:" in default
    assert "Method name is: tensorflow/serving/predict" in default
    pixels = shown.stdout.split("signature_def['serving_pixels']:")[1]
    assert "inputs['image'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 96, 96, 3)" \
        in pixels
    uint8 = shown.stdout.split("signature_def['serving_uint8']:")[1]
    assert "inputs['image_tensor'] tensor_info:\n        dtype: DT_UINT8\n" \
        "        shape: (-1, -1, -1, 3)" in uint8
    example = shown.stdout.split("signature_def['tf_example']:")[1]
    assert "inputs['examples'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" \
        in example

    np.save(tmp_path / "bytes.npy", np.array([real_image_files[0].read_bytes()], dtype=object))
    ran = subprocess.run([cli, "run", "--dir", str(version_dir), "--tag_set", "serve",
                          "--signature_def", "serving_default",
                          "--inputs", f"image_bytes={tmp_path / 'bytes.npy'}"],
                         capture_output=True, text=True, timeout=300, env=PYTHON_ENV)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Result for output key class_names:" in ran.stdout
    assert "Result for output key probabilities:" in ran.stdout


def test_rest_request_body_is_tf_serving_row_format_and_gives_the_same_answer(served,
                                                                            real_image_files):
    _, version_dir, _, _ = served
    files = [str(path) for path in real_image_files[:3]]
    process = run_module("rest-request", *files, timeout=120)
    assert process.returncode == 0, process.stderr
    body = json.loads(process.stdout)
    assert body["signature_name"] == "serving_default"
    assert all(set(instance) == {"image_bytes"} and set(instance["image_bytes"]) == {"b64"}
               for instance in body["instances"])
    # TF Serving turns {"b64": ...} into the decoded bytes of the named string input.
    decoded = [base64.b64decode(instance["image_bytes"]["b64"]) for instance in body["instances"]]
    assert decoded == [open(path, "rb").read() for path in files]
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    from_body = signature(image_bytes=tf.constant(decoded))["probabilities"].numpy()
    direct = signature(image_bytes=tf.constant([open(path, "rb").read() for path in files]))
    np.testing.assert_array_equal(from_body, direct["probabilities"].numpy())


def test_warmup_requests_cover_every_signature_and_replay_to_the_same_answers(served):
    _, version_dir, _, _ = served
    loaded = tf.saved_model.load(str(version_dir))
    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    answers = {}
    for record in tf.data.TFRecordDataset(str(path)):  # What TF Serving replays on load.
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        name = request.model_spec.signature_name
        inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
        answers.setdefault(name, []).append(loaded.signatures[name](**inputs)["probabilities"])
    assert sorted(answers) == SIGNATURES
    assert {name: [len(p) for p in batches] for name, batches in answers.items()} == \
        {name: [1, 4] for name in SIGNATURES}
    # The same four held-out images in each signature's form (PNG, float32 and uint8 pixels, PNG
    # in a tf.train.Example): the same probabilities, up to float32 reordering at scale 1.
    for name in SIGNATURES:
        assert np.abs(answers[name][1].numpy() - answers["serving_default"][1].numpy()).max() \
            < FLOAT32_REORDERED, name


def test_serving_uint8_refuses_other_channels_and_empty_images(served):
    _, version_dir, _, _ = served
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_uint8"]
    assert serve(image_tensor=tf.zeros((1, 5, 300, 3), tf.uint8))["probabilities"].shape == (1, 10)
    for shape in ((1, 28, 28, 4), (1, 0, 28, 3)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="uint8 \\[N, H, W, 3\\]"):
            serve(image_tensor=tf.zeros(shape, tf.uint8))


def test_tf_example_without_the_image_feature_fails_naming_it(served, real_image_files):
    _, version_dir, _, _ = served
    serve = tf.saved_model.load(str(version_dir)).signatures["tf_example"]
    good = saved_model.tf_example(real_image_files[0].read_bytes())
    other = tf.train.Example(features=tf.train.Features(feature={"image/png": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[real_image_files[0].read_bytes()]))}))
    assert serve(examples=tf.constant([good]))["probabilities"].shape == (1, 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image/encoded"):
        serve(examples=tf.constant([good, other.SerializeToString()]))


def test_a_string_that_is_not_an_image_fails_the_request_with_a_clear_error(served,
                                                                            real_image_files):
    _, version_dir, _, _ = served
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        signature(image_bytes=tf.constant([real_image_files[0].read_bytes(), b"not an image"]))


def test_each_export_is_a_new_version_and_never_overwrites(served, tmp_path):
    run_dir, version_dir, model, labels = served
    export_dir = tmp_path / "export"
    task = Classification(labels)

    def export():
        return saved_model.export_saved_model(
            model, str(export_dir), task.output_names,
            lambda outputs: task.serving_outputs(outputs, top_k=5), np.zeros((1, 96, 96, 3)),
            pixel_budget=10**6)

    first = export()
    before = (export_dir / "1" / "saved_model.pb").read_bytes()
    second = export()
    assert (first, second) == (str(export_dir / "1"), str(export_dir / "2"))
    assert (export_dir / "1" / "saved_model.pb").read_bytes() == before
    assert sorted(os.listdir(export_dir)) == ["1", "2"]  # No partial folder left behind.


def test_predict_cli_reports_unreadable_files_and_predicts_the_rest(served, real_image_files,
                                                                    tmp_path):
    run_dir, version_dir, model, labels = served
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in real_image_files[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "truncated.png").write_bytes(real_image_files[0].read_bytes()[:40])
    (folder / "notes.png").write_text("this is text, not an image")
    process = run_module("predict", f"--model={run_dir / 'export'}", "--json", str(folder),
                         str(tmp_path / "missing.jpg"), timeout=300)
    assert process.returncode == 1
    assert "3 of 7 files could not be read as images." in process.stderr
    for bad in ("truncated.png", "notes.png", "missing.jpg"):
        assert f"{bad}: cannot predict:" in process.stderr
    predicted = {os.path.basename(line["path"]): line["top_k"]
                 for line in map(json.loads, process.stdout.splitlines())}
    good = sorted(real_image_files[:4], key=lambda p: p.name)
    assert sorted(predicted) == [path.name for path in good]
    expected = model.predict(decoded_pixels(good, 96), verbose=0)
    for path, probabilities in zip(good, expected, strict=True):
        top = predicted[path.name]
        assert len(top) == 3 and top[0]["class_name"] == labels[probabilities.argmax()]
        # A probability, in [0, 1]: 1e-4 is ~1,600 float32 roundings at scale 1 (see above).
        assert top[0]["score"] == pytest.approx(float(probabilities.max()), rel=0,
                                                abs=FLOAT32_REORDERED)


def test_every_weight_is_stored_once(served):
    # keras-team/keras#23553: model.export() stores each weight twice; tlkeras' export must not.
    _, version_dir, model, _ = served
    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    stored = sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
                 if name.endswith("VARIABLE_VALUE") and not name.startswith("save_counter"))
    assert stored == sum(int(np.prod(variable.shape)) for variable in model.variables)
    assert stored < 1.01 * model.count_params()  # The rest: the few random-seed states.
