"""Benchmark of the live frame pipeline on a real video, with the `fer` package as an anchor.

    python -m benchmarks.pipeline --video ../shared/video/multi_face_640x480.avi [--frames N]

Decodes the video with PyAV (as video-file analysis does; the live page gets frames
decoded by aiortc the same way), runs every frame through :class:`FrameAnalyzer`
with the active models (annotation included), and prints per-stage latency (median
and p95), end-to-end frames per second and faces per frame. When the optional `fer`
package is installed, the same frames then go through
``FER(mtcnn=False).detect_emotions`` (Haar detection + one emotion network) for
comparison. The first ``--warmup`` frames (graph tracing, caches) are not timed.
Targets (2-core machine, 640x480, three faces, all three models): >= 60 fps end to
end, p95 <= 25 ms per frame, faster per frame than the `fer` anchor, and >= 2.9 faces
per frame; with ``--people N`` (the people in the clip) it also counts false boxes: faces
reported beyond N in a frame.
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from core.analyzer import AnalyzerSettings, FrameAnalyzer, limit_inference_threads
from core.config import TASKS
from core.detection import DETECTORS, DetectorSettings
from core.live_session import LIVE_ATTRIBUTE_EVERY
from core.models import ActiveModels
from core.tracking import TrackingSettings

STAGES = ("decode", "detect", "scan", "track", "preprocess", *TASKS, "attributes", "draw")
TARGET_FPS = 60.0
TARGET_P95_MS = 25.0
TARGET_FACES = 2.9


def timed_frames(path: Path, count: int) -> Iterator[tuple[np.ndarray, float]]:
    """``count`` BGR frames of the video (looping it if it is shorter) with each one's decode time in ms."""
    produced = 0
    while produced < count:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = container.decode(stream)
            looped = False
            while produced < count:
                t0 = time.perf_counter()
                try:
                    frame = next(frames).to_ndarray(format="bgr24")
                except StopIteration:
                    looped = True
                    break
                yield frame, (time.perf_counter() - t0) * 1000
                produced += 1
            if looped and produced == 0:
                raise ValueError(f"{path} has no decodable video frames")


def summary(values) -> dict:
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        return {"n": 0, "median_ms": None, "p95_ms": None}
    return {"n": int(values.size), "median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95))}


def bench_pipeline(path: Path, frames: int, warmup: int, settings: AnalyzerSettings, pace: float = 0.0,
                   people: int = 0) -> dict:
    """Time ``frames`` frames of the video through the analyzer; back to back, or with ``pace``
    frames per second at most, as a camera delivers them (then background work keeps up)."""
    models = ActiveModels(tasks=settings.tasks, freeze=True)  # as the Live page
    analyzer = FrameAnalyzer(models, settings)
    analyzer.warm_up()
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    per_frame, faces, failed = [], [], 0
    start = cpu_start = None
    for i, (frame, decode_ms) in enumerate(timed_frames(path, warmup + frames)):
        if i == warmup:
            start, cpu_start = time.perf_counter() - decode_ms / 1000, time.process_time()
        if pace > 0 and start is not None:
            time.sleep(max(0.0, start + (i - warmup) / pace - time.perf_counter()))
        _, result = analyzer.process(frame)
        if i < warmup:
            continue
        if result.error:
            failed += 1
        stages["decode"].append(decode_ms)
        for stage, ms in result.timings_ms.items():
            if stage in stages:
                stages[stage].append(ms)
        per_frame.append(decode_ms + result.timings_ms.get("total", 0.0))
        faces.append(len(result.faces))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "frames": len(per_frame),
        "failed_frames": failed,
        "wall_s": wall,
        "cpu_ms_per_frame": 1000 * cpu / len(per_frame),
        "fps": len(per_frame) / wall,
        "per_frame": summary(per_frame),
        "stages": {s: summary(v) for s, v in stages.items()},
        "faces_per_frame": float(np.mean(faces)),
        "faces_histogram": np.bincount(faces).tolist(),
        "false_boxes_per_frame": float(np.mean(np.maximum(0, np.asarray(faces) - people))) if people else None,
        "detector": analyzer.settings.to_dict()["detector"]["kind"],
        "models": analyzer.model_versions(),
        "attribute_every": settings.attribute_every,
        "pace": pace,
    }


def load_fer():
    """``FER`` from the optional `fer` package, or None when it is not installed."""
    try:
        from fer.fer import FER  # fer >= 25 no longer re-exports FER at the top level
    except ImportError:
        try:
            from fer import FER
        except ImportError:
            return None
    return FER


def bench_fer(path: Path, frames: int, warmup: int) -> dict | None:
    fer_class = load_fer()
    if fer_class is None:
        return None
    detector = fer_class(mtcnn=False)
    per_frame, faces = [], []
    start = cpu_start = None
    for i, (frame, decode_ms) in enumerate(timed_frames(path, warmup + frames)):
        if i == warmup:
            start, cpu_start = time.perf_counter() - decode_ms / 1000, time.process_time()
        t0 = time.perf_counter()
        found = detector.detect_emotions(frame)
        ms = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            per_frame.append(decode_ms + ms)
            faces.append(len(found))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"frames": len(per_frame), "wall_s": wall, "fps": len(per_frame) / wall,
            "cpu_ms_per_frame": 1000 * cpu / len(per_frame),
            "per_frame": summary(per_frame), "faces_per_frame": float(np.mean(faces))}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:7.2f}"


def report(video: Path, pipeline: dict, anchor: dict | None, anchor_note: str = "") -> str:
    lines = [
        f"video: {video}  frames timed: {pipeline['frames']}  (failed: {pipeline['failed_frames']})",
        f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} at the end "
        "(other work on the cores slows every figure)",
        f"models: {pipeline['models']}; age and gender re-estimated per face every "
        f"{pipeline['attribute_every']} frame(s); frames "
        + (f"delivered at {pipeline['pace']:g} fps (--pace)" if pipeline.get("pace") else "back to back"),
        "",
        f"{'stage':<11}{'median ms':>10}{'p95 ms':>9}{'frames':>8}",
    ]
    for stage, s in pipeline["stages"].items():
        lines.append(f"{stage:<11}{_ms(s['median_ms']):>10}{_ms(s['p95_ms']):>9}{s['n']:>8}")
    pf = pipeline["per_frame"]
    lines += [
        f"{'per frame':<11}{_ms(pf['median_ms']):>10}{_ms(pf['p95_ms']):>9}{pf['n']:>8}   (decode + analyse + draw)",
        "(detect: near-face searches, or a full scan when nothing is tracked; scan: the periodic "
        "full-frame scan on its worker thread; attributes: age and gender re-estimates on theirs; "
        "both in parallel, not part of a frame's time; age/gender: newcomers, in line)",
        "",
        f"end to end: {pipeline['fps']:.1f} fps over {pipeline['wall_s']:.1f} s; detector {pipeline['detector']}; "
        f"faces per frame {pipeline['faces_per_frame']:.2f} (histogram {pipeline['faces_histogram']})"
        + ("" if pipeline["false_boxes_per_frame"] is None else
           f"; false boxes per frame {pipeline['false_boxes_per_frame']:.3f} (faces beyond the clip's people)"),
        f"CPU time per frame (all threads of this process): {pipeline['cpu_ms_per_frame']:.1f} ms "
        "(what the work costs whatever else runs on the machine)",
    ]
    if anchor is None:
        lines.append(f"fer anchor: {anchor_note or 'not installed (docs/live.md: pip install --no-deps fer)'}")
    else:
        af = anchor["per_frame"]
        lines.append(
            f"fer anchor FER(mtcnn=False).detect_emotions (emotion only): {anchor['fps']:.1f} fps, "
            f"per frame median {af['median_ms']:.2f} ms, p95 {af['p95_ms']:.2f} ms, "
            f"CPU time per frame {anchor['cpu_ms_per_frame']:.1f} ms, faces per frame {anchor['faces_per_frame']:.2f}"
        )
    lines += [
        "",
        f"target >= {TARGET_FPS:.0f} fps end to end: {'PASS' if pipeline['fps'] >= TARGET_FPS else 'FAIL'} "
        f"({pipeline['fps']:.1f})",
        f"target p95 <= {TARGET_P95_MS:.0f} ms per frame: {'PASS' if pf['p95_ms'] <= TARGET_P95_MS else 'FAIL'} "
        f"({pf['p95_ms']:.2f})",
        f"target >= {TARGET_FACES} faces per frame: "
        f"{'PASS' if pipeline['faces_per_frame'] >= TARGET_FACES else 'FAIL'} "
        f"({pipeline['faces_per_frame']:.2f})",
    ]
    if anchor is not None:
        faster = pf["median_ms"] < anchor["per_frame"]["median_ms"]
        lines.append(
            f"target faster per frame than fer: {'PASS' if faster else 'FAIL'} "
            f"({anchor['per_frame']['median_ms'] / pf['median_ms']:.1f}x: median {pf['median_ms']:.2f} ms "
            f"vs {anchor['per_frame']['median_ms']:.2f} ms)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True, type=Path, help="video file (any format FFmpeg reads)")
    parser.add_argument("--frames", type=int, default=300, help="frames to time (the video loops if shorter)")
    parser.add_argument("--warmup", type=int, default=15, help="untimed frames first")
    parser.add_argument("--tasks", default=",".join(TASKS), help="models to run, comma-separated")
    parser.add_argument("--full-scan-every", type=int, default=TrackingSettings().full_scan_every,
                        help="frames between full-frame face scans while faces are tracked")
    parser.add_argument("--inline-scan", action="store_true",
                        help="run the periodic full scans in the frame path instead of on a worker thread")
    parser.add_argument("--tf-threads", type=int, default=1,
                        help="TensorFlow threads (1, as the Live page uses; 0 = TensorFlow's default pool)")
    parser.add_argument("--cv-threads", type=int, default=0,
                        help="OpenCV threads (cv2.setNumThreads; 1 as the Live page uses; 0 = OpenCV's default)")
    parser.add_argument("--attribute-every", type=int, default=LIVE_ATTRIBUTE_EVERY,
                        help="frames between re-estimates of a face's age and gender (1 = every frame; "
                             f"default {LIVE_ATTRIBUTE_EVERY}, as the Live page; video files use "
                             f"{AnalyzerSettings().attribute_every})")
    parser.add_argument("--pace", type=float, default=0.0,
                        help="deliver at most this many frames per second, as a camera does (0: back to back)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the fer anchor even if installed")
    parser.add_argument("--detector", default="yunet", choices=DETECTORS, help="face detector")
    parser.add_argument("--people", type=int, default=0,
                        help="people in the clip (3 in multi_face_640x480.avi): faces beyond it are false boxes")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.video.is_file():
        parser.error(f"no such video: {args.video}")
    tasks = tuple(t for t in args.tasks.split(",") if t)
    unknown = set(tasks) - set(TASKS)
    if unknown:
        parser.error(f"unknown tasks {sorted(unknown)}; choose from {TASKS}")
    if args.tf_threads > 0:
        limit_inference_threads(args.tf_threads)
    if args.cv_threads > 0:
        import cv2

        cv2.setNumThreads(args.cv_threads)
    tracking = TrackingSettings(full_scan_every=args.full_scan_every, background_scan=not args.inline_scan)
    settings = AnalyzerSettings(tasks=tasks, tracking=tracking, attribute_every=args.attribute_every,
                                detector=DetectorSettings(kind=args.detector))
    pipeline = bench_pipeline(args.video, args.frames, args.warmup, settings, args.pace, args.people)
    anchor = None if args.no_anchor else bench_fer(args.video, args.frames, args.warmup)
    print(report(args.video, pipeline, anchor, "skipped (--no-anchor)" if args.no_anchor else ""))
    if args.json:
        args.json.write_text(json.dumps({"video": str(args.video), "pipeline": pipeline, "fer": anchor}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
