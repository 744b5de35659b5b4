"""The SavedModel serves in a fresh process without tlkeras and matches the Keras model."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

import tlkeras.backbones  # noqa: F401  (registers BackbonePreprocessing for load_model)
from conftest import FASHION_MINI

# Runs in a fresh interpreter: only TensorFlow and NumPy, as on a serving host.
SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    export_dir, images_path, out_path = sys.argv[1:]
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = serving(image=tf.constant(np.load(images_path)))
    np.save(out_path, outputs["probabilities"].numpy())
    print(json.dumps({"outputs": sorted(outputs),
                      "tlkeras_imported": any(m.startswith("tlkeras") for m in sys.modules)}))
""")


def real_test_images(image_size: int) -> np.ndarray:
    """Two real test images per class, decoded and resized as the training pipeline does."""
    paths = [sorted(class_dir.iterdir())[i] for class_dir in sorted((FASHION_MINI / "test")
             .iterdir()) for i in range(2)]
    images = [tf.image.resize(tf.io.decode_png(tf.io.read_file(str(p)), channels=3),
                              (image_size, image_size)) for p in paths]
    return np.stack(images).astype(np.float32)


def test_saved_model_matches_keras_model_in_fresh_process(trained_run, tmp_path):
    _, run_dir = trained_run
    model = keras.models.load_model(run_dir / "model.keras")
    images = real_test_images(model.input.shape[1])
    expected = model.predict(images, verbose=0)
    np.save(tmp_path / "images.npy", images)

    served = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, str(run_dir / "export" / "1"),
         str(tmp_path / "images.npy"), str(tmp_path / "served.npy")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert served.returncode == 0, served.stderr[-3000:]
    report = json.loads(served.stdout.strip().splitlines()[-1])
    assert report == {"outputs": ["probabilities"], "tlkeras_imported": False}
    probabilities = np.load(tmp_path / "served.npy")
    assert probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(probabilities - expected).max() < 1e-4


def test_saved_model_cli_lists_serving_signature(trained_run):
    _, run_dir = trained_run
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", str(run_dir / "export" / "1"), "--all"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    serving = shown.stdout.split("signature_def['serving_default']:")[1]
    assert "inputs['image'] tensor_info:" in serving
    assert "dtype: DT_FLOAT" in serving and "shape: (-1, 96, 96, 3)" in serving
    assert "outputs['probabilities'] tensor_info:" in serving
    assert "shape: (-1, 10)" in serving
    assert "Method name is: tensorflow/serving/predict" in serving
    assert "MetaGraphDef with tag-set: 'serve' contains the following SignatureDefs" \
        in shown.stdout
