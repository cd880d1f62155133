"""Deep-metric-learning models: a backbone's pooled features -> Linear(d) -> L2 normalisation (Roth et al.'s
Revisiting-DML architecture; reference: MLforHealth/S2SD architectures/resnet50.py).

`models.get_model(name, num_classes=..., embedding_dim=d)` wraps any registered backbone; its outputs are the
normalised embeddings, its taps the backbone's (`pooled`, `feats[-1]` = the unpooled last stage). The backbone's
parameters keep their own paths (`nn.share_scope`), so classifier and embedding variants load the same converted
weights (`init_from`, `init_allow_random=('^params/embedding_head/',)`).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.losses.common import l2_normalize
from kdjax.models import layers


class EmbeddingNet(nn.Module):
    backbone: nn.Module      # built with num_classes=0: its output is the pooled feature
    dim: int = 128

    def setup(self):
        nn.share_scope(self, self.backbone)
        # torch nn.Linear default init, weight and bias (the reference's `last_linear`)
        self.embedding_head = layers.TorchLinear(self.dim, name="embedding_head")

    def __call__(self, x: jax.Array, *, train: bool):
        _, taps = self.backbone(x, train=train)
        z = self.embedding_head(taps["pooled"]).astype(jnp.float32)
        return l2_normalize(z), taps

    @property
    def num_classes(self) -> int:
        return 0
