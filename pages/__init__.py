"""The app's pages (a package only so that import-linter checks what they import; app.py lists them)."""
