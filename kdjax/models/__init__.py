"""Flax models returning `(outputs, taps)`, by name (`kdjax.models.build`), and PyTorch weight converters."""
from kdjax.models.build import FAMILIES, MODELS, from_config, from_torch, get_model, model_names

__all__ = ["FAMILIES", "MODELS", "from_config", "from_torch", "get_model", "model_names"]
