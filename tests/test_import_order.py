"""The TensorFlow-before-aiortc segfault must not be able to take the server down.

TensorFlow 2.21 loaded before pylibsrtp/aiortc crashes the interpreter (SIGSEGV) as
soon as the WebRTC stack is imported; in a Streamlit server that kills every session.
Every entry point therefore imports ``core`` first, which loads pylibsrtp early.

Each check runs in a FRESH interpreter, because the hazard depends on what a process
has loaded so far: the entry point (app, page, training CLI, benchmark or script) runs
first, then TensorFlow is imported (as any later page or model load would) and only then
aiortc + streamlit_webrtc, ending with a real ``RTCPeerConnection``. A clean exit with
the sentinel printed means the entry point leaves the process safe for any later import
order; a segfault shows up as return code -11. Each ``core``/``training`` module is
also imported alone first, then the WebRTC stack. Everything is discovered by globbing,
so new pages, modules, benchmarks and scripts are covered without touching this file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "IMPORT_ORDER_OK"
CHILD_TIMEOUT_S = 240

# Runs in the child: the entry point or module first, then (entry points only) TensorFlow,
# then the WebRTC stack. A module only has to survive being imported first: whether it
# loads TensorFlow itself is what is under test, and that crashes at the aiortc import.
PROBE = textwrap.dedent(
    f"""
    import asyncio, runpy, sys
    kind, target = sys.argv[1], sys.argv[2]
    if kind == "script":
        import streamlit as st  # a server has Streamlit loaded before it runs any page

        class ScriptStopped(Exception):
            pass

        def stop():  # bare mode ignores st.stop(); a server ends the script run there
            raise ScriptStopped

        st.stop = stop
        sys.argv = [target]
        try:
            runpy.run_path(target, run_name="__main__")
        except ScriptStopped:
            pass
    elif kind == "module":
        __import__(target)
    elif kind == "tool":  # a benchmark or script: its imports, not its main()
        runpy.run_path(target, run_name="__facesense_probe__")
    elif kind == "cli":
        sys.argv = [target, "--help"]
        try:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
    elif kind != "bare":
        raise SystemExit(f"unknown kind {{kind}}")
    if kind != "module":  # an entry point must leave the process safe for what runs later
        import tensorflow  # noqa: F401  (what a later page or model load does)
    import aiortc
    import streamlit_webrtc  # noqa: F401
    peer = aiortc.RTCPeerConnection()
    asyncio.run(peer.close())
    print("{SENTINEL}", flush=True)
    """
)


def _probe(kind: str, target: str = "-") -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONFAULTHANDLER": "0"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", PROBE, kind, target],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )


def _explain(proc: subprocess.CompletedProcess) -> str:
    crashed = proc.returncode < 0 and -proc.returncode == signal.SIGSEGV
    head = "SEGFAULT (TensorFlow loaded before pylibsrtp)" if crashed else f"rc={proc.returncode}"
    return f"{head}\n--- stdout ---\n{proc.stdout[-2000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


def _assert_safe(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0 and SENTINEL in proc.stdout, _explain(proc)


def _py_files(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).glob("*.py"))


def _module_name(path: Path) -> str:
    package = path.parent.name
    return package if path.stem == "__init__" else f"{package}.{path.stem}"


PAGE_DIRS = ("pages", "views")  # views/ in case pages/ is renamed (Streamlit's legacy pages/ mode)
SCRIPTS = ["app.py"] + [f"{d}/{p.name}" for d in PAGE_DIRS for p in _py_files(d)]
MODULES = [_module_name(p) for folder in ("core", "training") for p in _py_files(folder)
           if p.stem != "__main__"]
TOOLS = [f"{folder}/{p.name}" for folder in ("benchmarks", "scripts") for p in _py_files(folder)
         if p.stem != "__init__"]


PARALLEL = max(2, os.cpu_count() or 1)  # probes mostly wait on imports: run a few at once


@pytest.fixture(scope="module")
def probes(request) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    """Runs the probes of all selected script/module tests concurrently, once."""
    wanted = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.path == Path(__file__).resolve():
            wanted += [("script", params["script"])] if "script" in params else []
            wanted += [("module", params["module"])] if "module" in params else []
            wanted += [("tool", params["tool"])] if "tool" in params else []
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return dict(zip(wanted, pool.map(lambda probe: _probe(*probe), wanted)))


@pytest.mark.timeout(1800)  # the first test waits for every probe
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_first_then_webrtc_does_not_crash(probes, script: str) -> None:
    """The app and every page, run first as Streamlit would (bare mode), leave the process safe."""
    _assert_safe(probes[("script", script)])


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("module", MODULES)
def test_module_imported_first_then_webrtc_does_not_crash(probes, module: str) -> None:
    """Any core/training module imported alone first leaves the process safe."""
    _assert_safe(probes[("module", module)])


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("tool", TOOLS)
def test_benchmark_or_script_first_then_webrtc_does_not_crash(probes, tool: str) -> None:
    """Benchmarks and scripts are entry points too: their imports leave the process safe."""
    _assert_safe(probes[("tool", tool)])


def _require_training_cli() -> None:
    if not (REPO_ROOT / "training" / "__main__.py").is_file():
        pytest.skip("training/__main__.py does not exist yet")


def test_training_cli_help_exits_cleanly() -> None:
    """`python -m training --help`, the real command line, exits 0 and prints usage."""
    _require_training_cli()
    proc = subprocess.run(
        [sys.executable, "-m", "training", "--help"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=CHILD_TIMEOUT_S, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), _explain(proc)


def test_training_cli_first_then_webrtc_does_not_crash() -> None:
    _require_training_cli()
    _assert_safe(_probe("cli", "training"))


# --- Controls: prove the hazard is real and that this harness detects it. ----------------

@pytest.fixture(scope="module")
def unguarded() -> subprocess.CompletedProcess:
    """TensorFlow then aiortc with nothing run first; skips when it does not crash here."""
    proc = _probe("bare")
    if proc.returncode == 0:
        pytest.skip("TensorFlow-before-aiortc does not crash on this platform; nothing to guard")
    return proc


def test_control_tensorflow_first_without_guard_crashes(unguarded) -> None:
    """CONTROL: TensorFlow then aiortc with no guard crashes (the hazard is real)."""
    assert unguarded.returncode != 0 and SENTINEL not in unguarded.stdout


def test_control_unguarded_page_is_detected(unguarded, tmp_path: Path) -> None:
    """CONTROL: a page that forgets ``import core`` fails the same probe the real pages pass."""
    page = tmp_path / "unguarded_page.py"
    page.write_text("import streamlit as st\n\nst.title('Forgot import core')\n")
    proc = _probe("script", str(page))
    assert proc.returncode != 0 and SENTINEL not in proc.stdout, _explain(proc)
