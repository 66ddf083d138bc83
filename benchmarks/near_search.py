"""How YuNet's near-face search trades window size against box and landmark accuracy.

    python -m benchmarks.near_search [--video FILE ...] [--frames N]

Between full scans the tracker looks for each known face in a window around its last box,
rescaled so the face spans a set number of pixels (``core.detection.YUNET_NEAR_PX``, in a
window of ``YUNET_NEAR_MARGIN`` face sizes beyond each side). For every face that YuNet finds
at full resolution (confidence >= 0.9) in two frames in a row (every second frame of each
clip), this searches the second frame in the window the first frame's box gives, and
compares the answer with the full-resolution detection: box IoU, mean landmark error in
eye distances, faces missed, and the detector's time per window on one thread. Last, how
fast a pure-Python loop runs beside a thread of 320-wide scans, through the detector's ctypes
call and through yuface's own binding (which holds the GIL while it runs).
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np

from core import detection
from core.detection import DetectorSettings, YuNetFaceDetector
from core.preprocess import iou

SETTINGS = ((48, 0.5), (detection.YUNET_NEAR_PX, detection.YUNET_NEAR_MARGIN))  # before, now


def clip_frames(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    return frames[::2][:count]


def measure(detector: YuNetFaceDetector, clips: list[list[np.ndarray]], references, face_px: int,
            margin: float) -> dict:
    ious, marks, ms, missed, largest = [], [], [], 0, (0, 0)
    for frames, refs in zip(clips, references):
        for i in range(1, len(frames)):
            for before in refs[i - 1]:
                now = max(refs[i], key=lambda d: iou(d.box, before.box), default=None)
                if now is None or iou(now.box, before.box) < 0.3:
                    continue  # the face left or was not found at full resolution
                window = detection._near_window(frames[i], before.box, face_px, margin)
                roi, x0, y0, scale = window
                largest = max(largest, roi.shape[:2])
                t0 = time.perf_counter()
                found = [d.shifted(x0, y0, scale) for d in detector._run(roi)]
                ms.append((time.perf_counter() - t0) * 1000)
                found = [d for d in found if iou(d.box, before.box) > 0.3]
                if not found:
                    missed += 1
                    continue
                best = max(found, key=lambda d: iou(d.box, before.box))
                ious.append(iou(best.box, now.box))
                eyes = float(np.linalg.norm(now.landmarks[0] - now.landmarks[1]))
                marks.append(float(np.linalg.norm(best.landmarks - now.landmarks, axis=1).mean()) / eyes)
    return {"searches": len(ious) + missed, "missed": missed, "largest": largest,
            "iou_median": np.median(ious), "iou_p5": np.percentile(ious, 5),
            "marks_median": np.median(marks), "marks_p95": np.percentile(marks, 95), "ms": np.median(ms)}


def python_speed_beside(scan, image: np.ndarray, seconds: float = 1.0) -> float:
    """A pure-Python loop's iterations while another thread runs ``scan(image)`` back to back,
    as a share of its iterations alone."""
    def spin() -> int:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            count += 1
        return count

    def scans() -> None:
        gomp = detection._load_yunet()[1]
        if gomp is not None:
            gomp.omp_set_num_threads(detection.YUNET_THREADS)  # as the detector runs (per thread)
        while not stop.is_set():
            scan(image)

    alone = spin()
    stop = threading.Event()
    worker = threading.Thread(target=scans)
    worker.start()
    try:
        beside = spin()
    finally:
        stop.set()
        worker.join()
    return beside / alone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, nargs="*", help="clips (default: the .avi clips in --video-dir)")
    parser.add_argument("--video-dir", type=Path, default=Path("../shared/video"))
    parser.add_argument("--frames", type=int, default=150, help="frames per clip (every second frame)")
    args = parser.parse_args(argv)
    videos = args.video or sorted(args.video_dir.glob("*.avi"))
    if not videos:
        parser.error(f"no clips: pass --video, or a --video-dir with .avi files (not {args.video_dir})")
    if not detection.yunet_available():
        parser.error("YuNet (yuface) is not installed here")
    clips = [clip_frames(v, args.frames) for v in videos]
    full = YuNetFaceDetector(DetectorSettings(detect_width=0))
    references = [[[d for d in full.detect(f) if d.confidence >= 0.9] for f in frames] for frames in clips]
    detector = YuNetFaceDetector(DetectorSettings())
    print(f"clips: {', '.join(str(v) for v in videos)}; every second frame, {args.frames} per clip")
    print(f"{'face px':>8}{'margin':>8}{'largest window':>16}{'searches':>10}{'missed':>8}"
          f"{'IoU median':>12}{'IoU p5':>8}{'landmarks median':>18}{'p95':>7}{'ms/window':>11}")
    for face_px, margin in SETTINGS:
        r = measure(detector, clips, references, face_px, margin)
        window = f"{r['largest'][1]}x{r['largest'][0]}"
        print(f"{face_px:>8}{margin:>8.2f}{window:>16}{r['searches']:>10}{r['missed']:>8}"
              f"{r['iou_median']:>12.3f}{r['iou_p5']:>8.3f}{r['marks_median']:>18.3f}{r['marks_p95']:>7.3f}"
              f"{r['ms']:>11.2f}")
    print("(landmarks: mean distance to the full-resolution landmarks, in eye distances; the last row is "
          "what core.detection runs)")
    from yuface.yuface import detect as bound_detect

    small = np.ascontiguousarray(clips[0][0][::2, ::2])
    ours = python_speed_beside(detection._load_yunet()[0], small)
    theirs = python_speed_beside(bound_detect, small)
    print(f"a Python loop beside a thread of {small.shape[1]}x{small.shape[0]} scans runs at {ours:.2f} of its "
          f"speed alone through core.detection (ctypes), {theirs:.2f} through yuface's binding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
