"""Load pylibsrtp/aiortc's native libraries before TensorFlow can be imported.

TensorFlow 2.21 and aiortc 1.16 ship conflicting copies of native libraries;
when TensorFlow is loaded first, the later pylibsrtp import crashes the whole
interpreter (and with it the Streamlit server). Loading pylibsrtp first is a
measured, reliable workaround, so it happens as the first thing ``core`` does.
"""
import sys

if "tensorflow" not in sys.modules and "keras" not in sys.modules:
    try:  # pragma: no cover - depends on the optional webrtc stack
        import pylibsrtp  # noqa: F401
    except ImportError:
        pass
