"""Pure JAX loss functions: arrays in, a scalar out, usable under jit / grad / vmap. No Flax, no configs.

One API for all of them:
- arrays first, hyper-parameters keyword-only; a hyper-parameter given as a Python number is checked (a negative
  temperature, margin or weight is a ValueError naming it);
- the result is a scalar that `jax.grad` differentiates as it stands, with the reduction of the PyTorch reference
  named in each docstring (so published loss weights transfer); where per-example values make sense
  (`cross_entropy`, `kd`, `logit_mse`, `dkd`, `focal_bce`, `mld`, `similarity_kl`) `reduction='none'` returns them;
- the logit methods (`kd`, `dkd`, `mlld`) take `logit_stand=True` (`logit_standardize`, Sun et al. 2024);
- diagnostics come from separate functions (`margin_statistics`, `ndd_valid_pairs`, `multi_similarity_masks`);
- the two stateful losses (`crd`, `icd_intra`; `STATEFUL`) return `(loss, new_state)`: differentiate them with
  `jax.grad(..., has_aux=True)`;
- teacher arrays are not stop-gradient'ed here: the caller decides which side is constant. The Jacobian losses take
  the networks as callables and treat the teacher as constant.
"""
from kdjax.losses.common import l2_normalize
from kdjax.losses.contrastive import (crd, crd_init_state, crd_update_memory, icd_fire_plan, icd_init_cache,
                                      icd_intra, icd_margin)
from kdjax.losses.features import adaptive_avg_pool, attention_transfer, fitnet, ofd, ofd_margins, review_hcl, vid
from kdjax.losses.jacobian import (attention_jacobian_matching, attention_map, input_gradients, jacobian_matching,
                                   jacobian_matching_jvp, jacobian_norm_penalty)
from kdjax.losses.logits import (cross_entropy, ctkd_lambda, ctkd_temperature, dist, dkd, gradient_reversal, kd,
                                 logit_mse, logit_standardize, mlld)
from kdjax.losses.metric import margin, margin_statistics, multi_similarity, multi_similarity_masks, proxy_anchor
from kdjax.losses.mining import (distance_log_weights, distance_weighted_triplets, distance_weights,
                                 rho_distance_triplets)
from kdjax.losses.multilabel import (focal_bce, huber_distance, led, led_class_aware, led_instance_aware, mld,
                                    multilabel_mse, ndd_valid_pairs, negative_discrepancy, partial_softmax,
                                    positive_divide)
from kdjax.losses.relational import pkt, rkd
from kdjax.losses.similarity import similarity_kl

# Scalar losses (differentiable as they stand).
LOSSES = (
    "cross_entropy", "kd", "logit_mse", "dkd", "mlld", "dist",                              # logits
    "fitnet", "attention_transfer", "ofd", "review_hcl", "vid",                            # features
    "rkd", "pkt", "similarity_kl",                                                         # relations
    "multi_similarity", "margin", "proxy_anchor",                                          # metric learning
    "focal_bce", "mld", "led", "led_class_aware", "led_instance_aware", "huber_distance",  # multi-label
    "partial_softmax", "positive_divide", "negative_discrepancy", "multilabel_mse",
    "jacobian_matching", "jacobian_matching_jvp", "jacobian_norm_penalty",
    "attention_jacobian_matching",                                                         # Jacobians
)
STATEFUL = ("crd", "icd_intra")  # (loss, new_state)
# What the losses are built from: state initialisers and updates, miners, margins, masks, statistics.
HELPERS = ("logit_standardize", "gradient_reversal", "ctkd_lambda", "ctkd_temperature", "adaptive_avg_pool",
           "attention_map", "crd_init_state", "crd_update_memory", "icd_fire_plan",
           "icd_init_cache", "icd_margin", "input_gradients", "l2_normalize", "margin_statistics",
           "multi_similarity_masks", "distance_log_weights", "distance_weighted_triplets", "distance_weights",
           "rho_distance_triplets", "ndd_valid_pairs", "ofd_margins")

__all__ = list(LOSSES + STATEFUL + HELPERS) + ["LOSSES", "STATEFUL", "HELPERS"]
