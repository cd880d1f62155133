"""The ML-Decoder head against a NumPy restatement of L2D's decoder in eval mode; its frozen queries; head errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models
from kdjax.models import ml_decoder


def _layer_norm(x, p, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def np_ml_decoder(params, queries, feature_map, heads=8):
    """L2D's MLDecoder.forward + TransformerDecoderLayerOptimal (eval: every dropout is the identity), float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    b, h, w, d = feature_map.shape
    tokens = np.maximum(feature_map.reshape(b, h * w, d) @ p["embed_standart"]["kernel"]
                        + p["embed_standart"]["bias"], 0)
    q = _layer_norm(2 * np.broadcast_to(queries, (b,) + queries.shape), p["norm1"])
    a = p["multihead_attn"]
    proj = lambda x, name: x @ a[name]["kernel"] + a[name]["bias"]  # noqa: E731
    e = queries.shape[-1]
    split = lambda x: x.reshape(b, -1, heads, e // heads).transpose(0, 2, 1, 3)  # noqa: E731
    qh, kh, vh = split(proj(q, "query")), split(proj(tokens, "key")), split(proj(tokens, "value"))
    logits = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(e // heads)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = (weights @ vh).transpose(0, 2, 1, 3).reshape(b, -1, e)
    q2 = _layer_norm(q + proj(attended, "out"), p["norm2"])
    hidden = np.maximum(q2 @ p["linear1"]["kernel"] + p["linear1"]["bias"], 0)
    out = _layer_norm(q2 + hidden @ p["linear2"]["kernel"] + p["linear2"]["bias"], p["norm3"])
    return np.einsum("bce,ce->bc", out, p["duplicate_pooling"]) + p["duplicate_pooling_bias"], out


def test_head_equals_the_numpy_restatement_in_eval_mode():
    head = ml_decoder.MLDecoder(num_classes=6)
    x = jax.random.normal(jax.random.key(0), (3, 2, 3, 40))
    variables = head.init(jax.random.key(1), x, train=False)
    # non-trivial LayerNorm affines and biases, so each parameter's place is checked
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(a.size), a.shape), variables["params"])
    logits, embeddings = head.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=False)
    want_logits, want_embeddings = np_ml_decoder(params, np.asarray(variables["batch_stats"]["query_embed"], np.float64),
                                                 np.asarray(x, np.float64))
    assert logits.shape == (3, 6) and embeddings.shape == (3, 6, 768)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(embeddings, want_embeddings, rtol=1e-4, atol=1e-4)


def test_attention_is_initialised_as_torchs_multihead_attention():
    """nn.MultiheadAttention: xavier-uniform on the packed [3E, E] in-projection (bound sqrt(6 / 4E) for each of q,
    k, v), nn.Linear's default on the out-projection (bound 1 / sqrt(E)), zero biases. Uniform draws: the largest of
    E^2 values lies within 1 % of the bound."""
    e = 256
    head = ml_decoder.MLDecoder(num_classes=4, width=e, hidden=64)
    params = head.init(jax.random.key(0), jnp.zeros((1, 2, 2, 8)), train=False)["params"]["multihead_attn"]
    bounds = {"query": np.sqrt(6 / (4 * e)), "key": np.sqrt(6 / (4 * e)), "value": np.sqrt(6 / (4 * e)),
              "out": 1 / np.sqrt(e)}
    for name, bound in bounds.items():
        kernel = np.asarray(params[name]["kernel"])
        assert 0.99 * bound < np.abs(kernel).max() <= bound, (name, np.abs(kernel).max(), bound)
        np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3), rtol=0.02)  # uniform, not truncated normal
        assert not np.any(np.asarray(params[name]["bias"]))


def test_queries_are_standard_normal_constants_and_dropout_acts_in_training():
    model = models.get_model("resnet18", num_classes=5, head="ml_decoder", width=0.125)
    x = jax.random.normal(jax.random.key(2), (2, 32, 32, 3))
    variables = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.key(3))
    queries = variables["batch_stats"]["decoder"]["query_embed"]
    assert queries.shape == (5, 768) and "query_embed" not in variables["params"]["decoder"]
    assert abs(float(queries.std()) - 1.0) < 0.05
    run = jax.jit(lambda key: model.apply(variables, x, train=True, mutable=["batch_stats"],
                                          rngs={"dropout": jax.random.key(key)}))
    (a, taps), updated = run(4)
    (b, _), _ = run(5)
    np.testing.assert_array_equal(updated["batch_stats"]["decoder"]["query_embed"], queries)
    assert not np.allclose(a, b)  # the decoder's dropouts are on in training
    assert taps["label_embeddings"].shape == (2, 5, 768) and taps["feature_map"].ndim == 4
    grads = jax.jit(jax.grad(lambda p: model.apply(dict(variables, params=p), x, train=False)[0].sum()))(variables["params"])
    assert float(jnp.abs(grads["decoder"]["duplicate_pooling"]).sum()) > 0


@pytest.mark.parametrize("name", ["vgg13", "resnet32x4", "wrn_40_2", "resnet56", "mobilenetv2", "shufflev2", "resnet34"])
def test_every_table_b1_backbone_takes_the_head(name):
    model = models.get_model(name, num_classes=4, head="ml_decoder")
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, 32, 32, 3)), train=False), shapes)
    assert out[0].shape == (1, 4) and out[1]["label_embeddings"].shape == (1, 4, 768)


def test_unknown_head_is_named():
    with pytest.raises(ValueError, match="unknown head 'mldecoder'; valid heads: gap_fc, ml_decoder"):
        models.get_model("resnet18", num_classes=3, head="mldecoder")


def test_bf16_forward_gives_float32_logits_close_to_float32():
    x = jax.random.uniform(jax.random.key(6), (2, 32, 32, 3))
    f32 = models.get_model("resnet18", num_classes=4, head="ml_decoder", width=0.125, head_width=64, head_hidden=128)
    bf16 = models.get_model("resnet18", num_classes=4, head="ml_decoder", width=0.125, head_width=64, head_hidden=128,
                            dtype="bfloat16")
    variables = jax.jit(lambda k: f32.init(k, x, train=False))(jax.random.key(7))
    a = jax.jit(lambda v: f32.apply(v, x, train=False))(variables)
    b = jax.jit(lambda v: bf16.apply(v, x, train=False))(variables)
    assert a[0].dtype == b[0].dtype == jnp.float32 and b[1]["label_embeddings"].dtype == jnp.float32
    np.testing.assert_allclose(b[0], a[0], atol=0.1 * float(jnp.abs(a[0]).max()) + 0.05)
    assert not np.array_equal(a[0], b[0])  # the bf16 path really ran in bf16
