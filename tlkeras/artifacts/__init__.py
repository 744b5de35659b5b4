"""Exported artifacts: the export contract, the SavedModel for TF Serving, TFLite."""
