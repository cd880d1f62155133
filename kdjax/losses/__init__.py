"""Pure JAX loss functions: arrays in, scalar out, usable under jit/grad/vmap.

No Flax, no configs. Teacher arrays are not stop-gradient'ed here; the caller decides which side is constant.
"""
from kdjax.losses.common import l2_normalize
from kdjax.losses.contrastive import (crd, crd_init_state, crd_update_memory, icd_fire_plan, icd_init_cache,
                                      icd_intra, icd_margin)
from kdjax.losses.features import adaptive_avg_pool, attention_transfer, fitnet, ofd, ofd_margins, review_hcl, vid
from kdjax.losses.jacobian import (attention_jacobian_matching, attention_map, input_gradients, jacobian_matching,
                                   jacobian_matching_jvp, jacobian_norm_penalty)
from kdjax.losses.logits import cross_entropy, dkd, kd, logit_mse, mlld
from kdjax.losses.metric import margin, multi_similarity, multi_similarity_masks, proxy_anchor
from kdjax.losses.multilabel import (focal_bce, huber_distance, led, led_class_aware, led_instance_aware, mld,
                                    multilabel_mse, ndd_valid_pairs, negative_discrepancy, partial_softmax,
                                    positive_divide)
from kdjax.losses.mining import (distance_log_weights, distance_weighted_triplets, distance_weights,
                                 rho_distance_triplets)
from kdjax.losses.relational import pkt, rkd
from kdjax.losses.similarity import similarity_kl

__all__ = [
    "adaptive_avg_pool", "attention_jacobian_matching", "attention_map", "attention_transfer", "crd",
    "crd_init_state", "crd_update_memory", "cross_entropy", "icd_fire_plan", "icd_init_cache", "icd_intra",
    "icd_margin", "dkd", "fitnet", "input_gradients", "jacobian_matching",
    "jacobian_matching_jvp", "jacobian_norm_penalty", "kd", "logit_mse", "mlld", "ofd", "ofd_margins", "pkt",
    "review_hcl", "rkd", "vid", "margin", "multi_similarity", "multi_similarity_masks", "proxy_anchor",
    "distance_log_weights", "focal_bce", "huber_distance", "led", "led_class_aware", "led_instance_aware",
    "mld", "multilabel_mse", "ndd_valid_pairs", "negative_discrepancy", "partial_softmax", "positive_divide", "distance_weighted_triplets", "distance_weights", "rho_distance_triplets",
    "similarity_kl", "l2_normalize",
]
