"""FitNet's regressor ConvReg (Romero et al., ICLR 2015; reference: megvii-research/mdistiller mdistiller/distillers/_common.py): student map -> teacher map.

s_H == 2 t_H: conv3x3 stride 2 pad 1; 2 s_H == t_H: transposed conv 4x4 stride 2 pad 1 (doubles the size);
s_H >= t_H: conv with kernel (1 + s_H - t_H, 1 + s_W - t_W), no padding. Convs with bias, then BN(t_C) and ReLU.
Init: PyTorch's default conv init for the kernel; biases start at zero (torch draws them uniformly: a deliberate,
documented difference that does not change what the regressor can learn).
"""
import flax.linen as nn

from kdjax.models import layers


class ConvReg(nn.Module):
    teacher_shape: tuple  # (H, W, C) of the teacher feature
    use_relu: bool = True

    @nn.compact
    def __call__(self, x, *, train: bool = True):
        (s_h, s_w), (t_h, t_w, t_c) = x.shape[1:3], self.teacher_shape
        init = layers.torch_default_conv
        if s_h == 2 * t_h:
            x = nn.Conv(t_c, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=init)(x)
        elif 2 * s_h == t_h:
            # torch ConvTranspose2d(k=4, s=2, p=1) == lax transpose with padding k - 1 - p = 2 each side.
            x = nn.ConvTranspose(t_c, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), transpose_kernel=True,
                                 kernel_init=init)(x)
        elif s_h >= t_h:
            x = nn.Conv(t_c, (1 + s_h - t_h, 1 + s_w - t_w), padding="VALID", kernel_init=init)(x)
        else:
            raise ValueError(f"ConvReg: student map {s_h}x{s_w} cannot be regressed to teacher map {t_h}x{t_w} "
                             f"(supported: equal or larger student maps, or exactly half the teacher's size)")
        x = layers.batch_norm(train)(x)
        return nn.relu(x) if self.use_relu else x
