#!/usr/bin/env bash
# Start FaceSense: create/refresh .venv at the repo root, then `streamlit run app.py`.
# Extra arguments go to streamlit, e.g. `bash scripts/start.sh --server.port 8600`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

ensure_venv
ensure_requirements requirements.txt
cd "$REPO_ROOT"
say "starting FaceSense (Ctrl+C to stop); open the Local URL below in your browser"
exec "$VENV/bin/streamlit" run app.py "$@"
