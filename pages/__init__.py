"""The app's pages (a package only so that import-linter checks what they import; app.py lists them)."""
import core  # noqa: F401  (first: safe native-library import order, like every entry point)
