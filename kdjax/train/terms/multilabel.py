"""Terms of multi-label classifiers (multi-hot labels [B, C]): the task loss."""
import dataclasses

from kdjax import losses
from kdjax.train.terms.base import Term, register


@register("focal")
@dataclasses.dataclass(frozen=True)
class Focal(Term):
    """Focal BCE summed over the batch and the labels; `gamma=0` is L2D's BCE-sum task loss (configs name it
    `'bce': {'term': 'focal', 'gamma': 0.0, ...}`), `gamma=2` the 3D paper's."""
    gamma: float = 2.0

    def __post_init__(self):
        if self.gamma < 0:
            raise ValueError(f"focal: gamma={self.gamma} must be >= 0")

    def loss(self, inputs):
        if inputs.labels.ndim != 2:
            raise ValueError(f"focal: needs multi-hot labels [B, C], got labels of shape {inputs.labels.shape} "
                             "(a multilabel task and dataset)")
        return losses.focal_bce(inputs.student_logits, inputs.labels, gamma=self.gamma)
