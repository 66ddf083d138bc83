#!/usr/bin/env bash
# Run the whole test suite: .venv with the test needs, Debian's Chromium and PostgreSQL
# for the browser and database tests (those tests skip if they cannot be installed),
# then pytest. Arguments go to pytest, e.g. `bash scripts/test.sh tests/test_app_pages.py -x`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

ensure_venv
ensure_requirements requirements-dev.txt
apt_install chromium chromium-driver postgresql \
    || say "warning: continuing without them; browser/PostgreSQL tests will skip"
cd "$REPO_ROOT"
# Lint first (rules in pyproject.toml): a second, a clear message, and CI fails on it.
"$VENV_PY" -m ruff check --no-cache . || die "ruff found problems (above); fix them or see pyproject.toml"
# Architecture contracts (pyproject.toml): no import cycles in core/ or training/, core without Streamlit.
"$VENV/bin/lint-imports" --no-cache || die "an import breaks an architecture contract (above; pyproject.toml)"
# --durations: the slowest tests in every log, to keep the suite within CI's budget.
exec "$VENV_PY" -m pytest --durations=15 "$@"  # exit status is pytest's (5 = no tests = failure)
