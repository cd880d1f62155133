"""PyTorch state dicts -> kdjax variables: the converter registry and the building blocks converters share.

`state_dict` maps PyTorch parameter names to arrays (NumPy, or torch tensors), as `torch.load` returns them; wrapper
keys (`model`, `net`, `state_dict`) and `module.` prefixes (DataParallel) are removed first. Each (source, model)
pair registers a mapping into `CONVERTERS` (under 'source:model') from the module that defines the model; the entry
point, `kdjax.models.from_torch`, checks the result against the kdjax model's own structure and shapes
(`jax.eval_shape` of its init), so a wrong architecture or a missing tensor fails with the paths that differ.
Nothing is downloaded: the user passes the file they have.
"""
import jax
import jax.numpy as jnp
import numpy as np

from kdjax.registry import Registry

WRAPPER_KEYS = ("state_dict", "model", "net")
CONVERTERS = Registry("converter")


def register(source: str, names):
    """Registers `fn(name, state_dict) -> variables` for every model name in `names` from `source`."""
    def wrap(fn):
        for name in names:
            CONVERTERS.register(f"{source}:{name}", fn)
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


def check_fits(name, variables, model, image_shape):
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


CLASSIFIER_NAMES = ("fc", "classifier", "linear", "Dense_0")


def classifier_size(variables) -> int:
    """Outputs of the top-level classifier layer (0 when the checkpoint has none)."""
    for key in CLASSIFIER_NAMES:
        head = variables["params"].get(key)
        if head is not None:
            return int(np.shape(head["kernel"])[-1])
    return 0
