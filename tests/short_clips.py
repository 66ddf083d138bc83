"""Short clips cut from the shared webcam recordings, so batch tests take seconds, not minutes."""
from __future__ import annotations

from pathlib import Path

import av

from tests.conftest import shared_path


def cut_clip(name: str, target: Path, frames: int) -> Path:
    """The first ``frames`` frames of ../shared/video/``name`` as an MJPEG AVI (skips without ../shared)."""
    source = shared_path("video", name)
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream("mjpeg", rate=int(round(float(stream.average_rate or 30))))
        out.width, out.height, out.pix_fmt = stream.width, stream.height, "yuvj420p"
        for index, frame in enumerate(src.decode(stream)):
            if index >= frames:
                break
            for packet in out.encode(frame.reformat(format="yuvj420p")):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    return target


def truncated_copy(source: Path, target: Path, share: float = 0.05) -> Path:
    """A damaged video: the first ``share`` of ``source``'s bytes (the header promises more frames)."""
    data = source.read_bytes()
    target.write_bytes(data[: max(1, int(len(data) * share))])
    return target
