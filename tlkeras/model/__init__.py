"""The network: keras.applications backbones, the model around them, phase-2 unfreezing, losses."""
