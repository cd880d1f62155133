"""TensorFlow for the input pipeline, imported without its C++ start-up lines and kept off accelerators.

TensorFlow only feeds data here, yet importing it prints, before kdjax's first line, absl's "All log messages before
absl::InitializeLog()" warning, the oneDNN notice and the CPU-feature notice, once per TensorFlow library that loads
(TF_CPP_MIN_LOG_LEVEL does not reach them: they come before TensorFlow configures its logging). So the import runs
with the process's stderr captured; those known lines are dropped and anything else TensorFlow said is passed on.
Later C++ messages keep TensorFlow's own filter, set here to show warnings and errors but not INFO lines (unless the
user set TF_CPP_MIN_LOG_LEVEL). TensorFlow must not reserve GPU memory that JAX needs: its GPUs are hidden.

kdjax modules import TensorFlow as `from kdjax.quiet_tensorflow import tf`.
"""
import os
import sys
import tempfile

STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def is_startup_noise(line: str) -> bool:
    return any(marker in line for marker in STARTUP_NOISE)


def _import_with_stderr_filtered():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            said = captured.read().decode(errors="replace").splitlines()
            kept = [line for line in said if line.strip() and not is_startup_noise(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tensorflow


tf = sys.modules.get("tensorflow") or _import_with_stderr_filtered()
tf.config.set_visible_devices([], "GPU")
