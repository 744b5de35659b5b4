"""Records each keras.applications backbone's parameter count (include_top=False) for
`tlkeras train --list_backbones`, which would otherwise build all 40 models (~80 s on 2 CPU cores).

    .venv/bin/python tools/record_backbone_params.py   # rewrites tlkeras/model/backbone_params.json

tests/test_backbones.py checks recorded counts against freshly built models.
"""

import json
import pathlib

import keras

from tlkeras.model import backbones

TARGET = pathlib.Path(__file__).resolve().parents[1] / "tlkeras" / "model" / "backbone_params.json"


def main():
    counts = {}
    for name, spec in backbones.available_backbones().items():
        size = spec.default_size
        model = spec.constructor(include_top=False, weights=None, input_shape=(size, size, 3))
        counts[name] = model.count_params()
        print(name, counts[name], flush=True)
        keras.backend.clear_session()
    TARGET.write_text(json.dumps({"keras": keras.__version__, "params": counts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
