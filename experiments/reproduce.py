"""Seeds of one config: `experiments.sweep` without a grid, under the command earlier READMEs show.

    python -m experiments.reproduce --config=configs/<file>.py[:args] --workdir=W [--seeds=0,1,2] [--stage=S]
        [--set a.b=value ...]

is `python -m experiments.sweep --config=... --workdir=W --seeds=... [--stages=S] [--set=a.b=value ...]`: one cell
per seed in `W/seed-<N>/`, resumable, `W/table.md` and `W/summary.json` with mean ± std over the seeds.
"""
import sys

from absl import app

from experiments import sweep


def translate(argv: list[str]) -> list[str]:
    """reproduce's flags as sweep's: `--stage=S` -> `--stages=S` (the stage tabulated), `--set a=b` ->
    `--set=a=b`; everything else is the same."""
    out, args = [], list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--set" and args:
            out.append(f"--set={args.pop(0)}")
        elif arg.startswith("--stage="):
            value = arg.split("=", 1)[1]
            if value != "all":
                out.append(f"--stages={value}")
        else:
            out.append(arg)
    return out


def main(argv=None):
    app.run(sweep.main, argv=["experiments.reproduce"] + translate(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
