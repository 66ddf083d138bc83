"""benchmarks.detectors on small real samples from ../shared (skipped when absent)."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import pytest

from benchmarks.detectors import (
    DETECTORS, GRID, MULTI_PEOPLE, build_tiled, clip_frames, main, match, tile_frame,
)
from core.detection import make_detector, yunet_available
from tests.conftest import shared_path

needs_yunet = pytest.mark.skipif(not yunet_available(), reason="yuface (YuNet) not installed here")


@pytest.fixture(scope="module")
def multi_frames():
    return clip_frames(shared_path("video", "multi_face_640x480.avi"), 3)


@needs_yunet
def test_tiled_frame_is_640x480_with_27_references(multi_frames):
    assert tile_frame(multi_frames[0]).shape == (480, 640, 3)
    tiled = build_tiled(multi_frames[:1])
    assert tiled.skipped == 0
    assert tiled.frames[0].shape == (480, 640, 3)
    assert len(tiled.refs[0]) == GRID * GRID * MULTI_PEOPLE == 27
    # every reference lies inside the frame
    for x, y, w, h in tiled.refs[0]:
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480 and w > 0 and h > 0


@needs_yunet
def test_yunet_finds_the_tiled_faces(multi_frames):
    # the Live default (scans 320 wide) and full resolution: the tiled clip's faces are 14-41 px wide
    tiled = build_tiled(multi_frames)
    assert len(tiled.frames) >= 2
    for label, _, settings in DETECTORS[:2]:
        detector = make_detector(settings)
        for frame, refs in zip(tiled.frames, tiled.refs):
            matched, false = match(detector.detect(frame), refs)
            assert matched >= 26, label
            assert false <= 2, label


@needs_yunet
def test_main_prints_the_table(capsys):
    shared_path("data", "utkface_split.csv")
    args = ["--utk", str(shared_path("data", "utkface_96.tar")),
            "--fer", str(shared_path("data", "fer2013_images.zip")),
            "--video-dir", str(shared_path("video", "single_face_640x480.avi").parent),
            "--limit", "50", "--frames", "20"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "UTK test" in out and "ms/frame" in out and "Machine:" in out
    rows = [line for line in out.splitlines() if line.startswith(("yunet full ", "yunet 320 ", "haar (Live) "))]
    assert len(rows) == 3
    assert "UTKFace test 50, FER2013 PrivateTest 50" in out
    assert out.count("PASS") + out.count("FAIL") >= 9
