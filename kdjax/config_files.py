"""Config files as the command line names them: `path/to/config.py[:args]`, plus `a.b.c=value` overrides.

What `--config=...` and `--config.a.b=value` do in `experiments.main` (ml_collections' config_flags), for the tools
that build configs themselves (the sweep runner, its validation): `load` imports the file and calls its
`get_config(args)`; `override` sets one dotted key, parsing the text as the field's type, and names the valid keys
when the key does not exist.
"""
import ast
import importlib.util
import os

import ml_collections

from kdjax.errors import ConfigError


def split(config_arg: str) -> tuple[str, str]:
    """'configs/x.py:a=1,b' -> ('configs/x.py', 'a=1,b')."""
    path, _, args = config_arg.partition(":")
    return path, args


def load_module(path: str):
    """The Python module of a config (or sweep specification) file."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"kdjax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load(config_arg: str, extra_args: str = "") -> ml_collections.ConfigDict:
    """The ConfigDict of `path.py[:args]`, with `extra_args` ('seed=1,method=kd') appended to its arguments."""
    path, args = split(config_arg)
    module = load_module(path)
    arguments = ",".join(filter(None, [args, extra_args]))
    try:
        return module.get_config(arguments or None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}:{arguments}: {e}") from e


def accepts_argument(config_arg: str, key: str, value: str) -> bool:
    """Whether the config's `get_config` takes `key` as an argument (`:key=value`), rather than as a field."""
    try:
        load(config_arg, f"{key}={value}")
    except ConfigError as e:
        if "Unknown config argument" in str(e):
            return False
        raise
    return True


def _parse(current, text: str):
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"{text!r} is not a bool (true / false)")
        return text.lower() in ("true", "1")
    if isinstance(current, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets the dotted `key` of `config` to `text` parsed as the field's type; an unknown key or a value of another
    type is a ConfigError naming it."""
    node, path = config, key.split(".")
    for depth, name in enumerate(path):
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            where = ".".join(path[:depth]) or "the config"
            valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else "none (not a block)"
            raise ConfigError(f"{key}: {where} has no key {name!r}; valid keys: {valid}")
        if depth < len(path) - 1:
            node = node[name]
    current = node[path[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"{key} is a block ({sorted(current.keys())}); name one of its keys")
    try:
        node[path[-1]] = _parse(current, text)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}={text}: {e}") from e
