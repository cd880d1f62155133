"""The trainable method modules (kdjax.modules): shapes, PyTorch semantics of their resizes and transposed
convolution, initial values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import modules


def _init_apply(module, *args, **kw):
    variables = module.init(jax.random.key(0), *args, **kw)
    out = module.apply(variables, *args, mutable=["batch_stats"], **kw)[0] if "batch_stats" in variables \
        else module.apply(variables, *args, **kw)
    return variables, out


@pytest.mark.parametrize("s_hw, t_hw", [(16, 8), (8, 16), (16, 16), (10, 8)])
def test_conv_reg_maps_student_shape_to_teacher_shape(s_hw, t_hw):
    x = jax.random.normal(jax.random.key(1), (2, s_hw, s_hw, 5))
    _, out = _init_apply(modules.ConvReg(teacher_shape=(t_hw, t_hw, 7)), x, train=True)
    assert out.shape == (2, t_hw, t_hw, 7)
    assert float(out.min()) >= 0.0  # BN then ReLU


def test_conv_reg_rejects_unsupported_sizes():
    with pytest.raises(ValueError, match="4x4 cannot be regressed to teacher map 16x16"):
        modules.ConvReg(teacher_shape=(16, 16, 3)).init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)), train=True)


def test_conv_reg_transposed_conv_is_torch_conv_transpose_k4_s2_p1():
    """torch ConvTranspose2d(i, o, 4, stride 2, padding 1): out[2a - 1 + ky, 2b - 1 + kx] += x[a, b] W[i, o, ky, kx];
    the flax kernel K[ky, kx, o, i] (transpose_kernel=True) plays W[i, o, ky, kx]."""
    x = np.random.RandomState(0).randn(1, 3, 3, 2).astype(np.float32)
    module = modules.ConvReg(teacher_shape=(6, 6, 4), use_relu=False)
    variables = module.init(jax.random.key(0), jnp.asarray(x), train=False)
    kernel = np.asarray(variables["params"]["ConvTranspose_0"]["kernel"])
    bias = np.asarray(variables["params"]["ConvTranspose_0"]["bias"])
    full = np.zeros((1, 8, 8, 4), np.float32)  # out index + 1 (padding 1 crops one on each side)
    for a in range(3):
        for b in range(3):
            for ky in range(4):
                for kx in range(4):
                    full[0, 2 * a + ky, 2 * b + kx] += x[0, a, b] @ kernel[ky, kx].T
    expected = (full[:, 1:7, 1:7] + bias) / np.sqrt(1.0 + 1e-5)  # eval-mode BN at its initial statistics
    got = module.apply(variables, jnp.asarray(x), train=False)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("h, size", [(1, 8), (8, 16), (4, 6), (6, 4)])
def test_nearest_resize_uses_torch_floor_indexing(h, size):
    x = np.random.RandomState(0).randn(2, h, h, 3).astype(np.float32)
    src = np.floor(np.arange(size) * h / size).astype(int)
    np.testing.assert_array_equal(modules.nearest_resize(jnp.asarray(x), size), x[:, src][:, :, src])


def test_review_abfs_output_teacher_shapes_and_only_deeper_levels_fuse():
    student = [jnp.ones((2, 16, 16, 8)), jnp.ones((2, 8, 8, 16)), jnp.ones((2, 4, 4, 32)), jnp.ones((2, 1, 1, 32))]
    module = modules.ReviewABFs(out_channels=(6, 12, 24, 24), out_sizes=(32, 16, 8, 1))
    variables, out = _init_apply(module, student, train=True)
    assert [o.shape for o in out] == [(2, 32, 32, 6), (2, 16, 16, 12), (2, 8, 8, 24), (2, 1, 1, 24)]
    params = variables["params"]
    assert "Conv_1" in params["abf0"] and "Conv_2" not in params["abf3"]  # the deepest ABF has no attention conv
    assert params["abf0"]["Conv_0"]["kernel"].shape == (1, 1, 8, 32)  # mid = min(512, deepest student channels)
    with pytest.raises(ValueError, match="4 student features but 3 teacher"):
        modules.ReviewABFs(out_channels=(6, 12, 24), out_sizes=(32, 16, 8)).init(jax.random.key(0), student)


def test_vid_variance_starts_at_init_var_and_can_be_frozen():
    x = jnp.ones((2, 4, 4, 3))
    variables, (mean, alpha) = _init_apply(modules.VIDRegressor(5), x)
    assert mean.shape == (2, 4, 4, 5)
    np.testing.assert_allclose(jax.nn.softplus(alpha) + 1e-5, 5.0, rtol=1e-6)
    assert "log_scale" in variables["params"]
    frozen, (_, alpha_frozen) = _init_apply(modules.VIDRegressor(5, learn_variance=False), x)
    assert "log_scale" not in frozen["params"]
    np.testing.assert_allclose(alpha_frozen, alpha)


def test_embed_rows_are_unit_vectors():
    _, out = _init_apply(modules.Embed(16), jax.random.normal(jax.random.key(0), (4, 10)))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
