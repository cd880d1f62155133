"""kdjax: knowledge distillation research code in JAX/Flax."""
import setuptools

# Ranges are the ones installed together and tested (jax 0.10.2, flax 0.12.8, optax 0.2.8,
# orbax-checkpoint 0.12.8, tensorflow-cpu 2.21, tensorflow-datasets 4.9.10, clu 0.0.12, ml-collections 1.1,
# submitit 1.5.4, tensorstore 0.1.86).
INSTALL_REQUIRES = [
    "jax>=0.10,<0.11",
    "flax>=0.12,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12,<0.13",
    "tensorflow-datasets>=4.9.10,<5",
    "tensorflow-cpu>=2.21,<2.22",
    "tensorboard>=2.21,<2.22",
    "ml-collections>=1.1,<2",
    "clu>=0.0.12,<0.1",
    "absl-py>=2,<3",  # experiments/ flags and logging
    "scikit-learn>=1.5,<2",
    "scipy>=1.10,<2",  # imported directly (multi-label metrics, experiments.led_scale); scikit-learn needs it too
    "matplotlib>=3.8,<4",
    "numpy>=2.0,<3",
    "submitit>=1.5,<2",  # experiments.sweep on SLURM clusters
    "tensorstore>=0.1.70,<0.2",  # the teacher cache's chunked arrays (orbax-checkpoint installs it too)
]

setuptools.setup(
    name="kdjax",
    version="0.1.0",
    description="Knowledge distillation research code in JAX/Flax: losses, models, a sharded trainer, paper configs.",
    packages=setuptools.find_packages(include=["kdjax", "kdjax.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # pytest-xdist runs the suite on both cores in CI; Pillow (image-folder data) and packaging (requirement
        # names) already come with matplotlib and pytest and are named because the tests import them.
        "test": ["pytest>=8", "pytest-xdist>=3", "pillow>=10", "packaging>=23"],
        # tests marked `parity` (skipped without them, never in CI): PyTorch references of the converters (timm for
        # RepVGG and Swin) and the metric-learning losses and metrics
        "parity": ["torch>=2.2", "torchvision>=0.17", "timm>=1.0", "pytorch-metric-learning>=2.5"],
        # benchmarks/ only (never CI): the PyTorch, pytorch-metric-learning, faiss and grain references
        "bench": ["torch>=2.2", "torchvision>=0.17", "pytorch-metric-learning>=2.5", "faiss-cpu>=1.8", "grain>=0.2"],
    },
)
