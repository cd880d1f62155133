"""Where measurements go: TensorBoard (clu writers), `metrics.jsonl`, and a readable console line.

Only process 0 writes files. `metrics.jsonl` is appended on resume, one JSON object per logged step, so learning
curves can be plotted without TensorBoard (`python -m experiments.report`).
"""
import json
import math
import os
import time

import jax

from kdjax import quiet_tensorflow  # noqa: F401  (before clu, whose writers import TensorFlow)
from clu import metric_writers  # noqa: E402


class JsonlWriter(metric_writers.MetricWriter):
    """Appends `{"step": s, name: value, ...}` lines; scalars only."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write_scalars(self, step, scalars):
        record = {"step": int(step), "time": time.time()}
        record.update({k: float(v) for k, v in scalars.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def write_summaries(self, step, values, metadata=None): pass
    def write_images(self, step, images): pass
    def write_videos(self, step, videos): pass
    def write_audios(self, step, audios, *, sample_rate): pass
    def write_texts(self, step, texts): pass
    def write_histograms(self, step, arrays, num_buckets=None): pass
    def write_hparams(self, hparams): pass
    def flush(self): self._file.flush()
    def close(self): self._file.close()


def create_writer(logdir: str) -> metric_writers.MetricWriter:
    is_main = jax.process_index() == 0
    writer = metric_writers.create_default_writer(logdir, just_logging=not is_main, asynchronous=True)
    if not is_main:
        return writer
    os.makedirs(logdir, exist_ok=True)
    return metric_writers.MultiWriter([writer, JsonlWriter(os.path.join(logdir, "metrics.jsonl"))])


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ConsoleProgress:
    """One readable line per log step: step, epoch, loss terms, accuracy, steps/s, ETA."""

    def __init__(self, stage: str, total_steps: int, steps_per_epoch: int, start_step: int):
        self.stage, self.total, self.spe = stage, total_steps, steps_per_epoch
        self._t0, self._s0 = time.time(), start_step

    def line(self, step: int, scalars: dict) -> str:
        elapsed = time.time() - self._t0
        rate = (step - self._s0) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        terms = " ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in sorted(scalars.items()) if k.startswith("loss/"))
        acc = scalars.get("train/accuracy")
        acc = f" acc {acc:.3f}" if acc is not None else ""
        epoch = step / self.spe
        return (f"[{self.stage}] step {step}/{self.total} (epoch {epoch:.2f}) {terms}{acc} | "
                f"{rate:.2f} steps/s ETA {format_duration(eta)}")

    def print(self, step: int, scalars: dict):
        if jax.process_index() == 0:
            print(self.line(step, scalars), flush=True)


def say(stage: str, text: str) -> None:
    """One console line of a stage, from process 0."""
    if jax.process_index() == 0:
        print(f"[{stage}] {text}", flush=True)
