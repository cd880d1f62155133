"""kdjax: knowledge distillation in JAX/Flax.

Public entry points: `kdjax.losses` (pure loss functions), `kdjax.models` (registry of Flax models returning
`(logits, taps)`), `kdjax.data` (input pipelines), `kdjax.train` (the sharded trainer).
"""
__version__ = "0.1.0"
