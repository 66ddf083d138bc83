"""FaceSense: `streamlit run app.py` opens the multipage dashboard."""
import core  # noqa: F401  (first: loads pylibsrtp before anything can import TensorFlow)

import streamlit as st

from core import tasks
from core.config import TASKS
from core.detection import yunet_available
from core.registry import ModelRegistry
from pages.components.login import require_login
from pages.components.server_address import fix_disconnect_help
from pages.components.server_tuning import keep_models_warm

keep_models_warm()  # no keras.backend.clear_session() after every script run (see the module)

st.set_page_config(page_title="FaceSense", page_icon=":material/face:", layout="wide")


def home() -> None:
    st.title("FaceSense")
    st.markdown(
        """
Offline, open-source face analytics in your browser. For every face the webcam sees,
FaceSense estimates **emotion** (7 FER2013 classes), **age** and **gender**, live, and keeps
each session for charts, comparison and CSV export. Nothing leaves this machine: no cloud
calls, no downloads, models ship with the app.

- **Live**: stream the webcam, see every face boxed and labelled, each START..STOP is a session.
- **Statistics**: emotion over time, age and gender distributions, per session and per face; CSV export;
  analyse a video file.
- **Training**: train your own models on FER2013 / UTKFace, watch learning curves, evaluate, activate.

Model accuracy is reported honestly on held-out splits in each model's card (see the sidebar).
"""
    )


def sidebar_models() -> None:
    registry = ModelRegistry()
    with st.sidebar:
        st.subheader("Active models")
        for task in TASKS:
            entry = registry.active(task)
            value = entry.card.get("metrics", {}).get(tasks.get(task).metric)
            figure = f" · {tasks.get(task).metric_text(value)}" if value is not None else ""
            st.caption(f"**{task}**: {entry.id} ({entry.card.get('architecture', '?')}){figure}")


def detector_warning() -> None:
    """Once per browser session: the CNN face detector is missing here, so Haar runs instead."""
    if not yunet_available() and not st.session_state.get("facesense-detector-warned"):
        st.session_state["facesense-detector-warned"] = True
        st.toast("The CNN face detector (yuface) is not available on this platform: FaceSense uses OpenCV's "
                 "Haar cascade instead, which misses more faces. yuface has wheels for Python 3.11 on Linux x86-64.",
                 icon=":material/warning:")


pages = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page("pages/live.py", title="Live", icon=":material/videocam:"),
    st.Page("pages/statistics.py", title="Statistics", icon=":material/monitoring:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
]
navigation = st.navigation(pages)
require_login()  # LAN: password first; nothing below (sidebar, page) runs before it
sidebar_models()
detector_warning()
with st.sidebar:
    fix_disconnect_help()  # Streamlit's "connection lost" dialog: name FaceSense and how to start it
navigation.run()
