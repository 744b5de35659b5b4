"""tlkeras: train an image classifier on a pretrained backbone, from one command.

    python run.py --flagfile=configs/cifar10.cfg
    python run.py --flagfile=configs/quickstart.cfg --epochs=2   # later flags override the file

The same as `tlkeras train ...` (the installed console script): phase 1 trains a new head on the
frozen backbone, phase 2 fine-tunes its top, and the run folder gets TensorBoard logs, the best
checkpoint, labels.txt, metrics.json and a SavedModel for TF Serving. `python run.py --helpfull`
lists every flag, grouped; `python run.py --list_backbones` lists the backbones.
"""

import sys

from tlkeras.cli.main import run

if __name__ == "__main__":
    run("train", sys.argv)
