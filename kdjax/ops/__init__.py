"""Array operations below the model layer (no Flax): CPU-friendly convolution gradients."""
