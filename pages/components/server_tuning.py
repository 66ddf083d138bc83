"""Streamlit behaviour that costs a live server its frame rate, switched off.

After every script run, fragments included (the Live panel reruns every second in every
tab), Streamlit calls ``keras.backend.clear_session()`` (``script_runner._clean_problem_modules``),
which in TensorFlow clears the eager kernel cache: the next predictions of the cached face
models, on the analysis threads, rebuild their kernels and retrace. Measured with py-spy on
the 2-core VM with one Live stream: the analysis threads spent most of their time in
TensorFlow's ``quick_execute`` at about 2 analysed frames/s, against 12/s with the clear
skipped. FaceSense trains in separate processes (``training/jobs.py``) and keeps its models
loaded for the server's lifetime, so there is no Keras state to reset between runs;
matplotlib's figures are still closed as before. (The full ``gc.collect(2)`` after each run
is switched off in ``.streamlit/config.toml``: ``runner.postScriptGC = false``.)
"""
from __future__ import annotations

import sys


def keep_models_warm() -> None:
    """Stop Streamlit from clearing Keras' session after each script run (idempotent)."""
    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner._clean_problem_modules, "facesense", False):
        return

    def _clean_problem_modules() -> None:
        if "matplotlib.pyplot" in sys.modules:
            try:
                sys.modules["matplotlib.pyplot"].close("all")
            except Exception:  # noqa: BLE001,S110  (as Streamlit: never crash the app here)
                pass

    _clean_problem_modules.facesense = True  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = _clean_problem_modules
