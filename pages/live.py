"""Live page (placeholder until its issue lands)."""
import core  # noqa: F401  (first: safe native-library import order)

import streamlit as st

st.title("Live")
st.info("This page is being built.")
