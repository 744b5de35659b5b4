"""What a run shows people: evaluation reports, their figures, TensorBoard HParams."""
