"""Streamlit widgets shared by pages (a subfolder, so Streamlit never lists them as pages)."""
