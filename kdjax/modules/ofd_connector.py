"""OFD's connector (Heo et al., ICCV 2019; reference: megvii-research/mdistiller mdistiller/distillers/OFD.py ConnectorConvBN): conv1x1 (no bias, init
N(0, sqrt(2 / (k*k*C_out)))) + BN (gamma 1, beta 0), student channels -> teacher channels."""
import flax.linen as nn

from kdjax.models import layers


class OFDConnector(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, *, train: bool = True):
        return layers.batch_norm(train)(layers.conv(self.features, 1)(x))
