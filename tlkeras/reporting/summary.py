"""The lines a finished run prints last: test figures, and where every output is."""

import os


def print_summary(metrics: dict, run_dir: str, main_metric: str, report_files: str) -> None:
    """`main_metric` (the task's) leads each phase's test line; `report_files` names its PNGs."""
    for phase in ("phase1", "phase2"):
        test = metrics.get(phase, {}).get("test", {})
        if test:
            others = ", ".join(f"{key} {value:.4f}" for key, value in test.items()
                               if key != main_metric)
            print(f"{phase} test {main_metric}: {test[main_metric]:.4f} ({others})")
    print(f"Metrics: {os.path.join(run_dir, 'metrics.json')}")
    for phase in ("phase1", "phase2"):
        if "report" in metrics.get(phase, {}):
            print(f"{phase} report: {metrics[phase]['report']['path']} (report.json, "
                  f"{report_files})")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'logs')}")
    for variant, check in metrics.get("tflite", {}).items():
        agreement = (f"top-1 agreement {check['top1_agreement']:.3f}" if "top1_agreement" in check
                     else f"max abs diff {check['max_abs_diff']:.2g}")
        print(f"TFLite {variant}: {check['path']} ({agreement})")
    for role, model in metrics.get("distillation", {}).items():
        if role in ("teacher", "student"):
            accuracy = f"test accuracy {model['test_accuracy']:.4f}, " \
                if "test_accuracy" in model else ""
            print(f"Distillation {role}: {accuracy}{model['parameters']:,} parameters, "
                  f"{model['images_per_second']:.0f} images/s at {model['image_size']} px")
    print(f"SavedModel: {metrics['export']}")
