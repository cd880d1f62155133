"""PyTorch state dicts -> kdjax variables: one entry point, `from_torch(name, state_dict, *, source=...)`.

`state_dict` maps PyTorch parameter names to arrays (NumPy, or torch tensors), as `torch.load` returns them; wrapper
keys (`model`, `net`, `state_dict`) and `module.` prefixes (DataParallel) are removed first. Each (source, model)
pair registers a mapping into `CONVERTERS`; the result is checked against the kdjax model's own structure and
shapes (`jax.eval_shape` of its init), so a wrong architecture or a missing tensor fails with the paths that differ.
Nothing is downloaded: the user passes the file they have.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

WRAPPER_KEYS = ("state_dict", "model", "net")
CONVERTERS: dict[tuple[str, str], Callable] = {}


def register(source: str, names):
    def wrap(fn):
        for name in names:
            CONVERTERS[(source, name)] = fn
        return fn
    return wrap


def normalise_state_dict(state_dict) -> dict:
    """Unwraps {'model': sd} / {'net': sd} / {'state_dict': sd}, drops `module.` prefixes and BN step counters,
    converts tensors to NumPy."""
    for key in WRAPPER_KEYS:
        if isinstance(state_dict, dict) and key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    out = {}
    for k, v in state_dict.items():
        if k.endswith("num_batches_tracked"):
            continue
        v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        out[k.removeprefix("module.")] = v
    return out


# ---- building blocks shared by the converters --------------------------------------------------------------------
def conv(sd: dict, name: str, bias: bool = False) -> dict:
    """Conv2d OIHW -> flax HWIO (and its bias)."""
    out = {"kernel": np.transpose(sd[f"{name}.weight"], (2, 3, 1, 0))}
    if bias:
        out["bias"] = sd[f"{name}.bias"]
    return out


def dense(sd: dict, name: str, bias: bool = True) -> dict:
    """Linear (out, in) -> flax (in, out)."""
    out = {"kernel": sd[f"{name}.weight"].T}
    if bias:
        out["bias"] = sd[f"{name}.bias"]
    return out


def batch_norm(sd: dict, name: str) -> tuple[dict, dict]:
    """BatchNorm2d -> (params {scale, bias}, batch_stats {mean, var})."""
    return ({"scale": sd[f"{name}.weight"], "bias": sd[f"{name}.bias"]},
            {"mean": sd[f"{name}.running_mean"], "var": sd[f"{name}.running_var"]})


def block(sd: dict, prefix: str, convs: dict, bns: dict) -> tuple[dict, dict]:
    """One residual block: {flax name: torch name} for its convolutions and BNs; layers the state dict lacks
    (an identity shortcut) are left out."""
    params, stats = {}, {}
    for flax_name, torch_name in convs.items():
        if f"{prefix}.{torch_name}.weight" in sd:
            params[flax_name] = conv(sd, f"{prefix}.{torch_name}")
    for flax_name, torch_name in bns.items():
        if f"{prefix}.{torch_name}.weight" in sd:
            params[flax_name], stats[flax_name] = batch_norm(sd, f"{prefix}.{torch_name}")
    return params, stats


def _check_fits(name, variables, model, image_shape):
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(image_shape), train=False))
    expected = {k: v for k, v in expected.items() if k in ("params", "batch_stats")}
    got = {k: variables.get(k, {}) for k in expected if k in variables or expected[k]}
    flat_expected = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_leaves_with_path(expected)}
    flat_got = {jax.tree_util.keystr(p): np.shape(x) for p, x in jax.tree_util.tree_leaves_with_path(got)}
    missing = sorted(set(flat_expected) - set(flat_got))
    extra = sorted(set(flat_got) - set(flat_expected))
    wrong = sorted(k for k in set(flat_expected) & set(flat_got) if flat_expected[k] != flat_got[k])
    if missing or extra or wrong:
        details = "; ".join(f"{what}: {items[:5]}" for what, items in (
            ("missing", missing), ("unexpected", extra),
            ("shape mismatch", [f"{k} {flat_got[k]} vs {flat_expected[k]}" for k in wrong])) if items)
        raise ValueError(f"from_torch({name!r}): the converted weights do not fit kdjax's {name} ({details})")


def from_torch(name: str, state_dict, *, source: str = "torchvision", num_classes: int | None = None,
               image_shape=(1, 64, 64, 3), **model_kw) -> dict:
    """Variables {'params', 'batch_stats'} of `kdjax.models.get_model(name, num_classes=..., **model_kw)` from a
    PyTorch state dict of the same architecture. `num_classes` defaults to the checkpoint's classifier size (0
    without one: a headless backbone). `source`: where the checkpoint comes from ('torchvision', 'timm',
    'mdistiller', ...). `model_kw`: options the weights' shapes depend on (Swin's `img_size`)."""
    from kdjax import models
    if (source, name) not in CONVERTERS:
        known = sorted(f"{s}:{n}" for s, n in CONVERTERS)
        raise ValueError(f"from_torch: no converter for model {name!r} from source {source!r}; available: {known}")
    sd = normalise_state_dict(state_dict)
    try:
        variables = CONVERTERS[(source, name)](name, sd)
    except KeyError as e:
        raise ValueError(f"from_torch({name!r}, source={source!r}): the state dict has no tensor {e}; is it a "
                         f"{source} {name} checkpoint? Its keys look like {sorted(sd)[:6]}") from e
    if num_classes is None:
        num_classes = int(_classifier_size(variables))
    model = models.get_model(name, num_classes=num_classes, **model_kw)
    if getattr(model, "img_size", None):  # built for one input size (Swin): check at that size
        image_shape = (1, model.img_size, model.img_size, image_shape[-1])
    _check_fits(name, variables, model, image_shape)
    return jax.tree.map(lambda x: np.asarray(x, np.float32), variables)


CLASSIFIER_NAMES = ("fc", "classifier", "linear", "Dense_0")


def _classifier_size(variables) -> int:
    """Outputs of the top-level classifier layer (0 when the checkpoint has none)."""
    for key in CLASSIFIER_NAMES:
        head = variables["params"].get(key)
        if head is not None:
            return int(np.shape(head["kernel"])[-1])
    return 0


@register("torchvision", ("resnet18", "resnet34", "resnet50", "resnet101"))
def _torchvision_resnet(name, sd):
    from kdjax.models import imagenet_resnet
    return imagenet_resnet.variables_from_torch(name, sd)
