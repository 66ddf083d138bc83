"""FaceSense training library: loaders, model builders, fitting, evaluation, CLI.

Keras 3 only (no ``tf.*``), so the same code trains under TensorFlow on a CPU and
under JAX on a GPU (``KERAS_BACKEND=jax``).
"""
import core  # noqa: F401  (first: safe native-library import order)

# fit's per-epoch backup inside its output folder (read by fit, cleaned up by page jobs);
# here so the job supervisor can name it without importing Keras
RESUME_DIR = ".resume"
