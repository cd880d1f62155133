"""A sweep's cells: the product of its grid axes, times its seeds; each cell is one `experiments.main` run of the
sweep's config in its own folder.

An axis is `KEY=V1,V2,...`. KEY is either an argument of the config file (`method=kd,dkd` becomes
`configs/x.py:method=kd`) or a dotted config key, as in `--config.KEY=VALUE` overrides
(`stages.student_kd.losses.kd.temperature=2.0,4.0`); the config decides which (its `get_config` refuses unknown
arguments). A specification's `grid` may also be a list of such grids over the same keys: its points are the union
of their products (`[{method: (kd, dkd), logit_stand: (False, True)}, {method: dist, logit_stand: False}]`, where a
plain product would hold a combination that does not exist). Cells are ordered seed-major, so a sweep cut short
leaves every grid point with the same seeds.
"""
import dataclasses
import itertools
import re

from kdjax import config_files
from kdjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...]
    is_argument: bool = False  # a get_config argument rather than a config field

    @property
    def short(self) -> str:
        """The key's last component, for names and table headers."""
        return self.key.rsplit(".", 1)[-1]


def parse_axis(text: str) -> Axis:
    key, sep, values = text.partition("=")
    parsed = tuple(v.strip() for v in values.split(",")) if sep else ()
    if not key.strip() or not parsed or any(not v for v in parsed):
        raise ConfigError(f"--grid={text!r}: write KEY=V1,V2,... (a config argument or a dotted config key)")
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--grid={text!r}: a value appears twice")
    return Axis(key.strip(), parsed)


def parse_point(text: str) -> tuple[tuple[str, str], ...]:
    """'method=student,lam=0' -> (('method', 'student'), ('lam', '0')) (a baseline grid point)."""
    point = []
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{text!r}: write KEY=VALUE[,KEY=VALUE]")
        point.append((key, value))
    return tuple(point)


@dataclasses.dataclass(frozen=True)
class Cell:
    point: tuple[tuple[str, str], ...]   # (axis key, value) per axis, in axis order
    seed: int

    @property
    def point_name(self) -> str:
        return "_".join(f"{key.rsplit('.', 1)[-1]}-{_safe(value)}" for key, value in self.point) or "config"

    @property
    def name(self) -> str:
        """The cell's folder under the sweep's workdir, e.g. 'temperature-2.0_seed-0'."""
        return f"{self.point_name}_seed-{self.seed}" if self.point else f"seed-{self.seed}"


def _product(axes) -> list[tuple[tuple[str, str], ...]]:
    return list(itertools.product(*[[(a.key, v) for v in a.values] for a in axes]))


def _safe(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "+", value)


@dataclasses.dataclass(frozen=True)
class Sweep:
    config: str                          # 'configs/x.py[:args]'
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    baseline: tuple[tuple[str, str], ...] = ()
    stages: tuple[str, ...] = ()         # the stages to tabulate (default: every stage)
    fixed: tuple[Axis, ...] = ()         # one-value settings of every cell (`--set`), not part of cell names
    points: tuple = ()                   # the grid points when not the axes' full product (a list of grids)

    def cells(self) -> list[Cell]:
        points = self.points or _product(self.axes)
        return [Cell(point, seed) for seed in self.seeds for point in points]

    def arguments_and_overrides(self, cell: Cell) -> tuple[str, list[tuple[str, str]]]:
        """The cell's get_config arguments ('method=kd,seed=1') and its dotted-key overrides."""
        settings = list(cell.point) + [(a.key, a.values[0]) for a in self.fixed]
        kinds = {a.key: a.is_argument for a in self.axes + self.fixed}
        arguments = [f"{k}={v}" for k, v in settings if kinds[k]] + [f"seed={cell.seed}"]
        return ",".join(arguments), [(k, v) for k, v in settings if not kinds[k]]

    def config_of(self, cell: Cell):
        """The cell's ConfigDict, as `experiments.main` will build it."""
        arguments, overrides = self.arguments_and_overrides(cell)
        config = config_files.load(self.config, arguments)
        for key, value in overrides:
            config_files.override(config, key, value)
        return config


def resolve_axes(config: str, axes: list[Axis]) -> tuple[Axis, ...]:
    """Decides for every axis whether its key is a config argument or a config field, and checks that every value
    is accepted (the field exists and takes the value's type; the argument parses)."""
    if len({a.key for a in axes}) != len(axes):
        raise ConfigError(f"--grid / --set name a key twice: {[a.key for a in axes]}")
    if not config_files.accepts_argument(config, "seed", "0"):
        raise ConfigError(f"{config}: its get_config takes no `seed` argument (common.parse_arg(arg, seed=0))")
    resolved = []
    for axis in axes:
        if axis.key == "seed":
            raise ConfigError("--grid=seed=...: give the seeds with --seeds")
        is_argument = config_files.accepts_argument(config, axis.key, axis.values[0])
        base = config_files.load(config)
        for value in axis.values:
            if is_argument:
                config_files.load(config, f"{axis.key}={value}")
            else:
                config_files.override(base, axis.key, value)
        resolved.append(dataclasses.replace(axis, is_argument=is_argument))
    return tuple(resolved)


def load_specification(sweep_arg: str | None) -> dict:
    """The fields of a sweep specification file's `get_sweep(args)` (config, grid, seeds, baseline, set, stages,
    metrics); empty without one."""
    if not sweep_arg:
        return {}
    path, args = config_files.split(sweep_arg)
    fields = config_files.load_module(path).get_sweep(args or None)
    return fields.to_dict() if hasattr(fields, "to_dict") else dict(fields)


def _values(values) -> str:
    return ",".join(str(v) for v in (values if isinstance(values, (list, tuple)) else [values]))


def build(sweep_spec: dict, *, config: str | None = None, axes=(), fixed=(), seeds: str | None = None,
          baseline: str | None = None, stages=None) -> Sweep:
    """A Sweep from a specification's fields, with the command line's additions (`axes`, `fixed`: 'KEY=...' texts)
    and replacements (`config`, `seeds`, `baseline`, `stages`); every key and value checked."""
    config = config or sweep_spec.get("config")
    if not config:
        raise ConfigError("give --config=configs/<file>.py[:args] or --sweep=<specification>")
    grid_axes, points = _grid_axes(sweep_spec.get("grid", {}), [parse_axis(text) for text in axes])
    settings = [parse_axis(f"{k}={v}") for k, v in sweep_spec.get("set", {}).items()]
    settings += [parse_axis(t) for t in fixed]
    if any(len(a.values) != 1 for a in settings):
        raise ConfigError(f"--set takes one value per key: {[a.key for a in settings if len(a.values) != 1]}")
    resolved = resolve_axes(config, grid_axes + settings)
    seeds = seeds or _values(sweep_spec.get("seeds", (0, 1, 2)))
    try:
        seeds = tuple(int(s) for s in seeds.split(","))
    except ValueError as e:
        raise ConfigError(f"--seeds={seeds!r}: comma-separated integers") from e
    full = {a.short: a.key for a in grid_axes} | {a.key: a.key for a in grid_axes}  # a key or its last component
    point = parse_point(baseline if baseline is not None else sweep_spec.get("baseline", ""))
    unknown = [k for k, _ in point if k not in full]
    if unknown:
        raise ConfigError(f"the baseline names {unknown}, which are no grid axes: {[a.key for a in grid_axes]}")
    return Sweep(config, resolved[:len(grid_axes)], seeds, tuple((full[k], v) for k, v in point),
                 tuple(stages or sweep_spec.get("stages", ())), resolved[len(grid_axes):], points)


def _grid_axes(grid, extra: list[Axis]) -> tuple[list[Axis], tuple]:
    """The axes of a specification's grid (a dict, or a list of dicts over the same keys) with the command line's
    `extra` axes crossed with each; and the explicit points of a list (() for a plain product)."""
    blocks = [[parse_axis(f"{k}={_values(v)}") for k, v in g.items()] + extra
              for g in (grid if isinstance(grid, (list, tuple)) else [grid])] or [list(extra)]
    keys = [a.key for a in blocks[0]]
    for block in blocks[1:]:
        if [a.key for a in block] != keys:
            raise ConfigError(f"the grids of a grid list name different keys: {keys} and {[a.key for a in block]}")
    merged = [Axis(key, tuple(dict.fromkeys(v for block in blocks for v in block[i].values)))
              for i, key in enumerate(keys)]
    points = tuple(dict.fromkeys(p for block in blocks for p in _product(block))) if len(blocks) > 1 else ()
    return merged, points
