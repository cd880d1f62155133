"""The ML-Decoder label-embedding head of L2D's multi-label models (Ridnik et al., WACV 2023, as used by Yang et
al., ICCV 2023; reference: penghui-yang/L2D models/ml_decoder.py, from Alibaba-MIIL/ML_Decoder), and the wrapper
that puts it, or a plain pooled linear head, on any registered backbone.

ML-Decoder on the backbone's last feature map X [B, H, W, D] (`taps['feature_map']`), C labels, width E = 768:
  tokens T = ReLU(Linear_{D->E}(X)) [B, HW, E]; queries Q0 [C, E] ~ N(0, 1), never trained;
  one transformer decoder layer without self-attention, post-norm (LayerNorm eps 1e-5):
    Q1 = LN1(Q0 + Dropout(Q0))                 (the reference adds a dropped-out copy of the queries to themselves:
                                                in eval mode Q1 = LN1(2 Q0); kept, so converted weights behave)
    Q2 = LN2(Q1 + Dropout(MHA(Q1, T, T)))      (8 heads, dropout 0.1 on the attention weights)
    H  = LN3(Q2 + Dropout(Linear_{2048->E}(Dropout(ReLU(Linear_{E->2048}(Q2))))))
  label-wise embeddings H [B, C, E] (tap `label_embeddings`, what L2D's LED distils);
  group FC: z_bc = <H_bc, W_c> + b_c, W [C, E] xavier-normal (fans E and C, as torch on the [C, E, 1] tensor), b = 0.

The frozen queries live in the `batch_stats` collection: kdjax's collection of a model's non-trained state (BatchNorm
statistics), checkpointed and restored with it but never given to the optimiser, which is what the reference's
`requires_grad_(False)` means (no update, no weight decay).
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers

HEADS = ("gap_fc", "ml_decoder")


# torch nn.MultiheadAttention._reset_parameters: xavier-uniform on the packed [3E, E] in-projection, so each of q, k, v
# has bound sqrt(6 / (E + 3E)) (variance scale 1/2 of fan_avg over one [E, E] block); the out-projection keeps
# nn.Linear's default U(+-1/sqrt(E)); every bias 0.
IN_PROJECTION_INIT = nn.initializers.variance_scaling(0.5, "fan_avg", "uniform")


class MultiHeadCrossAttention(nn.Module):
    """torch nn.MultiheadAttention(E, heads) with query != key = value: q/k/v/out projections as separate Dense
    layers (torch packs q/k/v in `in_proj_weight`; the converter splits it), initialised as torch does."""
    width: int
    heads: int = 8
    dropout: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, query, memory, *, train: bool):
        def dense(name, init=IN_PROJECTION_INIT):
            return nn.Dense(self.width, dtype=self.dtype, name=name, kernel_init=init, bias_init=nn.initializers.zeros)
        split = lambda x: x.reshape(*x.shape[:-1], self.heads, self.width // self.heads)  # noqa: E731
        q, k, v = split(dense("query")(query)), split(dense("key")(memory)), split(dense("value")(memory))
        logits = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(self.width // self.heads)
        weights = nn.Dropout(self.dropout, deterministic=not train)(jax.nn.softmax(logits.astype(jnp.float32), -1))
        attended = jnp.einsum("...hqk,...khd->...qhd", weights.astype(self.dtype), v)
        return dense("out", layers.torch_linear_kernel)(attended.reshape(*attended.shape[:-2], self.width))


class MLDecoder(nn.Module):
    num_classes: int
    width: int = 768
    heads: int = 8
    hidden: int = 2048
    dropout: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, feature_map: jax.Array, *, train: bool):
        if feature_map.ndim != 4:
            raise ValueError(f"ML-Decoder needs the backbone's feature map [B, H, W, D], got {feature_map.shape}")
        batch = feature_map.shape[0]
        drop = lambda x: nn.Dropout(self.dropout, deterministic=not train)(x)  # noqa: E731
        norm = lambda name: nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name=name)  # noqa: E731
        tokens = feature_map.reshape(batch, -1, feature_map.shape[-1]).astype(self.dtype)
        tokens = nn.relu(layers.TorchLinear(self.width, dtype=self.dtype, name="embed_standart")(tokens))
        queries = self.variable("batch_stats", "query_embed",
                                lambda: jax.random.normal(self.make_rng("params"), (self.num_classes, self.width)))
        q0 = jnp.broadcast_to(queries.value.astype(self.dtype), (batch, self.num_classes, self.width))
        q1 = norm("norm1")(q0 + drop(q0))
        attended = MultiHeadCrossAttention(self.width, self.heads, self.dropout, dtype=self.dtype,
                                           name="multihead_attn")(q1, tokens, train=train)
        q2 = norm("norm2")(q1 + drop(attended))
        hidden = drop(nn.relu(layers.TorchLinear(self.hidden, dtype=self.dtype, name="linear1")(q2)))
        h = norm("norm3")(q2 + drop(layers.TorchLinear(self.width, dtype=self.dtype, name="linear2")(hidden)))
        std = math.sqrt(2.0 / (self.width + self.num_classes))
        w = self.param("duplicate_pooling", nn.initializers.normal(std), (self.num_classes, self.width))
        b = self.param("duplicate_pooling_bias", nn.initializers.zeros, (self.num_classes,))
        logits = jnp.einsum("bce,ce->bc", h.astype(jnp.float32), w) + b
        return logits, h.astype(jnp.float32)


class MultiLabelNet(nn.Module):
    """A backbone (built headless, num_classes=0) under the ML-Decoder; outputs (logits [B, C], taps), taps = the
    backbone's plus `label_embeddings` [B, C, E]. The backbone keeps its own parameter paths (`nn.share_scope`), so
    converted ImageNet weights load into it unchanged (`init_from` with `init_allow_random=('/decoder/',)`)."""
    backbone: nn.Module
    num_classes: int
    width: int = 768
    hidden: int = 2048
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        nn.share_scope(self, self.backbone)
        self.decoder = MLDecoder(self.num_classes, self.width, hidden=self.hidden, dtype=self.dtype)

    def __call__(self, x: jax.Array, *, train: bool):
        _, taps = self.backbone(x, train=train)
        logits, embeddings = self.decoder(taps["feature_map"], train=train)
        return logits, dict(taps, label_embeddings=embeddings)
