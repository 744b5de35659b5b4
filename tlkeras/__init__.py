"""tlkeras: two-phase transfer learning for image classification on Keras 3 and TensorFlow."""

__version__ = "0.1.0"
