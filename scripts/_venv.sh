# Shared by scripts/start.sh and scripts/test.sh (sourced, not run): a Python 3.11
# virtualenv at the repo root with the pinned requirements, re-installed only when a
# requirements file changes. Needs nothing but bash and python3.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
VENV_PY="$VENV/bin/python"

say() {  # bold tag on a terminal, plain text in CI logs
    if [ -t 2 ]; then printf '\033[1m[facesense]\033[0m %s\n' "$*" >&2
    else printf '[facesense] %s\n' "$*" >&2
    fi
}
die() { say "ERROR: $*"; exit 1; }

# Run as root, or through sudo when it needs no password; fail otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
    else return 1
    fi
}

# Debian/Ubuntu packages that are not installed yet.
missing_debian_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

# apt-get install what is missing; returns non-zero (and says why) when it cannot.
apt_install() {
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian/Ubuntu system: install these yourself if you need them: $*"; return 1
    fi
    missing="$(missing_debian_packages "$@" | tr '\n' ' ')"
    [ -z "${missing// /}" ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "apt-get not available; cannot install: $missing"; return 1
    fi
    say "installing Debian packages: $missing"
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing; then
        return 0
    fi
    say "could not install $missing (need root or password-less sudo, and the Debian mirrors)"
    return 1
}

python_ok() {  # $1: interpreter; true when it is CPython >= 3.11
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

# Python 3.11 (the version the pins are verified on), else python3 >= 3.11; $PYTHON overrides.
pick_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

ensure_venv() {
    if [ -x "$VENV_PY" ] && "$VENV_PY" -c 'import sys' >/dev/null 2>&1 && python_ok "$VENV_PY"; then
        return 0
    fi
    local py
    if ! py="$(pick_python)"; then
        say "no Python >= 3.11 found; trying Debian's python3"
        apt_install python3 python3-venv || true
        py="$(pick_python)" || die "FaceSense needs Python 3.11 (python3.11 or python3 >= 3.11 on PATH)"
    fi
    local version
    version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ "$version" = "3.11" ] || say "warning: using Python $version; the pins are verified on 3.11"
    say "creating .venv with $py (Python $version)"
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
        # Debian ships venv/ensurepip separately.
        rm -rf "$VENV"
        apt_install "python$version-venv" || true
        "$py" -m venv "$VENV" || die "cannot create .venv (Debian/Ubuntu: apt-get install python$version-venv)"
    fi
}

# Install a requirements file unless the same requirements were installed before.
ensure_requirements() {  # $1: requirements file, relative to the repo root
    local req="$1" stamp="$VENV/.facesense-${1//\//_}.sha256" digest
    digest="$("$VENV_PY" - "$REPO_ROOT" <<'PY'
import hashlib, pathlib, sys
root = pathlib.Path(sys.argv[1])
h = hashlib.sha256(sys.version.encode())
for name in sorted(root.glob("requirements*.txt")):
    h.update(name.name.encode() + b"\0" + name.read_bytes())
print(h.hexdigest())
PY
)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
        return 0
    fi
    say "installing $req into .venv (first time: a few minutes)"
    local progress=()
    [ -t 1 ] || progress=(--progress-bar off)
    "$VENV_PY" -m pip install --disable-pip-version-check ${progress[@]+"${progress[@]}"} -r "$REPO_ROOT/$req" \
        || die "pip install -r $req failed"
    echo "$digest" > "$stamp"
    # Files it includes with `-r` are installed too: stamp them so start.sh skips pip.
    local included
    for included in $(sed -n 's/^-r[[:space:]]*//p' "$REPO_ROOT/$req"); do
        echo "$digest" > "$VENV/.facesense-${included//\//_}.sha256"
    done
}
