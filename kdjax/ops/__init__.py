"""Array operations below the model layer (no Flax): CPU-friendly convolutions and XLA:CPU compiler options."""
