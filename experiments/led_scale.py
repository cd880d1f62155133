"""Where L2D's LED term gets its size: LED (class- and instance-aware parts, with L2D's weights 100 / 1000) beside
BCE at a student's initialisation, for ML-Decoder widths 128 and 768, and the same instance-aware LED computed on
the frozen ML-Decoder queries alone.

L2D (Yang et al., ICCV 2023; penghui-yang/L2D criterion/distiller_zoo/le_based/led.py) distils the ML-Decoder's
label-wise embeddings with a relational Huber distance: each set of embeddings' pairwise distances is divided by
their mean, so LED measures how differently the two networks' embeddings are *spread*, not how far apart they are.
The decoder's queries are N(0, 1) vectors that are never trained and pass into the embeddings through residual
connections, and random vectors are more nearly equidistant the wider they are (relative spread of their pairwise
distances about 1 / sqrt(2E): 0.063 at 128, 0.026 at 768). So if LED's size comes from the queries, it falls with
the width E and does not depend on the number of labels C. Two measurements:

1. networks (`--config`, `--teacher`): the student of the config at initialisation (seeds `--seeds`) against the
   trained teacher checkpoint, on the first `--batches` training batches, for each `--widths` value of the
   student's decoder (the teacher keeps its own width);
2. queries alone (no network): every label-wise embedding is its label's frozen query, student and teacher queries
   drawn independently, `--positives` positive labels per image; for each width and C in `--labels`. The
   class-aware part is 0 there (all of a class's embeddings are the same vector), so it is the instance-aware part.

    python -m experiments.led_scale --teacher=W/shared/teacher-<id>/teacher/checkpoints \\
        [--config=configs/ml_3d/fashion_mnist_mosaic.py:variant=l2d] [--widths=128,768] [--seeds=0,1,2]

configs/ml_3d/README.md quotes its output (about 2 minutes on 2 CPU cores).
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import distance

from kdjax import config_files
from kdjax.losses import multilabel as ml_losses


def relative_spread(vectors: np.ndarray) -> float:
    """std / mean of the pairwise Euclidean distances of the rows (0: exactly equidistant)."""
    d = distance.pdist(np.asarray(vectors, np.float64))
    return float(d.std() / d.mean())


def random_targets(key, batch: int, num_labels: int, positives: int) -> jax.Array:
    """[batch, num_labels] 0/1 with exactly `positives` ones per row, at random places."""
    if not 2 <= positives <= num_labels:
        raise ValueError(f"positives={positives}: the instance-aware term needs 2 <= positives <= labels "
                         f"({num_labels})")
    ranks = jnp.argsort(jax.random.uniform(key, (batch, num_labels)), axis=-1)
    return (ranks < positives).astype(jnp.float32)


def frozen_query_led(width: int, num_labels: int, *, batch: int, positives: int, seed: int,
                     teacher_width: int | None = None) -> float:
    """LED's instance-aware part, at L2D's weight (`losses.led`'s default), when every image's label-wise embeddings
    are the frozen queries (student [C, width] and teacher [C, teacher_width, default width] queries N(0, 1), drawn
    independently)."""
    k_student, k_teacher, k_targets = jax.random.split(jax.random.key(seed), 3)
    queries = [jax.random.normal(k, (num_labels, e)) for k, e in ((k_student, width),
                                                                  (k_teacher, teacher_width or width))]
    student, teacher = (jnp.broadcast_to(q, (batch,) + q.shape) for q in queries)
    targets = random_targets(k_targets, batch, num_labels, positives)
    return float(ml_losses.led(student, teacher, targets, cd_weight=0.0))


def network_terms(config_path: str, teacher_checkpoint: str, width: int, seed: int, batches: int) -> dict:
    """BCE (summed over the batch, L2D's task loss) and LED's weighted parts for the config's student at
    initialisation (train mode, as in its first step) against the teacher checkpoint, averaged over the first
    `batches` training batches; with the relative spread of the student's frozen queries."""
    from kdjax import parallel
    from kdjax.train import checkpoint as ckpt_lib
    from kdjax.train import recipe, stage
    joiner = "," if ":" in config_path else ":"
    config = config_files.load(f"{config_path}{joiner}seed={seed},head_width={width},"
                               f"teacher_checkpoint={teacher_checkpoint}")
    plan = stage.build(recipe.resolve_stage(config, "student"), parallel.make_mesh())
    teacher_vars, _ = ckpt_lib.load_model_variables(teacher_checkpoint)
    train = plan.data.train.batches(0)
    first = {k: jnp.asarray(v) for k, v in next(train).items()}
    variables = plan.model.init({"params": jax.random.key(seed), "dropout": jax.random.key(seed)},
                                first["image"], train=False)
    totals = dict(bce=0.0, led_class=0.0, led_instance=0.0)
    for i in range(batches):
        batch = first if i == 0 else {k: jnp.asarray(v) for k, v in next(train).items()}
        (logits, taps), _ = plan.model.apply(variables, batch["image"], train=True, mutable=["batch_stats"],
                                             rngs={"dropout": jax.random.key(seed + i)})
        _, teacher_taps = plan.teacher_model.apply(teacher_vars, batch["image"], train=False)
        s, t, y = taps["label_embeddings"], teacher_taps["label_embeddings"], batch["label"]
        totals["bce"] += float(ml_losses.focal_bce(logits, y, gamma=0.0, reduction="sum")) / batches
        # each part alone at L2D's weight: losses.led's defaults with the other weight 0
        totals["led_class"] += float(ml_losses.led(s, t, y, id_weight=0.0)) / batches
        totals["led_instance"] += float(ml_losses.led(s, t, y, cd_weight=0.0)) / batches
    queries = variables["batch_stats"]["decoder"]["query_embed"]
    return dict(totals, query_spread=relative_spread(queries),
                positives=float(np.mean(np.sum(np.asarray(first["label"]), -1))))


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/ml_3d/fashion_mnist_mosaic.py:variant=l2d")
    parser.add_argument("--teacher", default="", help="the teacher's checkpoint folder (part 1 skipped without)")
    parser.add_argument("--widths", type=_ints, default=[128, 768])
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--labels", type=_ints, default=[10, 80])
    parser.add_argument("--positives", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.teacher:
        print("networks at initialisation (mean over seeds; LED parts with L2D's weights 100 / 1000):")
        for width in args.widths:
            runs = [network_terms(args.config, args.teacher, width, s, args.batches) for s in args.seeds]
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            print(f"  student width {width:4d}: BCE {mean['bce']:8.2f}  LED class-aware {mean['led_class']:8.2f}  "
                  f"instance-aware {mean['led_instance']:8.2f}  query spread {mean['query_spread']:.4f}  "
                  f"(positives per image {mean['positives']:.2f}, seeds {args.seeds})")
    print(f"frozen queries alone (instance-aware LED at L2D's weight, {args.positives} positives per image, "
          f"batch {args.batch_size}, mean over seeds {args.seeds}):")
    teacher_widths = [None] + args.widths[:1]   # the same width as the student's, or the narrowest (the mosaic's)
    for width in args.widths:
        for labels in args.labels:
            spread = np.mean([relative_spread(jax.random.normal(jax.random.key(s), (labels, width)))
                              for s in args.seeds])
            for teacher_width in teacher_widths if width != args.widths[0] else [None]:
                values = [frozen_query_led(width, labels, batch=args.batch_size, positives=args.positives, seed=s,
                                           teacher_width=teacher_width) for s in args.seeds]
                print(f"  width {width:4d} (teacher {teacher_width or width:4d}), {labels:3d} labels: "
                      f"LED {np.mean(values):8.2f} ± {np.std(values, ddof=1):.2f}  query spread {spread:.4f}")


if __name__ == "__main__":
    main()
