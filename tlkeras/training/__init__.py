"""Training: the two phases, the feature cache, resuming, distribution and the run folder."""
