"""FaceSense core: plain-Python building blocks (no Streamlit in here).

Importing this package first loads ``pylibsrtp`` (when installed) because
TensorFlow 2.21 loaded before pylibsrtp/aiortc segfaults the process; every
entry point imports ``core`` (or ``training``, which imports ``core``) before
anything that may pull in TensorFlow, so the order is always safe.
"""
from core import _import_guard  # noqa: F401  (side effect: safe import order)
