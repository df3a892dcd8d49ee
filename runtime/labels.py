"""Marking generated video as synthetic: container metadata (always, unless declined), an
optional visible watermark, and reading the label back (`edge-retalk inspect`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from . import __version__
from .errors import EdgeRetalkError
from .media import check_readable

LABEL_PATTERN = re.compile(r"synthetic: lip-synced by edge-retalk (?P<version>\S+) \(generator (?P<generator>[^)]+)\)")
WATERMARK_TEXT = "AI-generated"


def synthetic_metadata(generator: str) -> dict[str, str]:
    """Container metadata (the mp4 `comment` tag, which ffprobe shows) saying the video is synthetic
    and what made it."""
    return {"comment": f"synthetic: lip-synced by edge-retalk {__version__} (generator {generator})"}


@dataclass(frozen=True)
class Inspection:
    """What a media file says about itself."""

    path: Path
    synthetic: bool
    version: str | None
    generator: str | None
    metadata: dict[str, str]
    streams: list[str]


def inspect_file(path: Path) -> Inspection:
    """Read a file's container metadata and streams; recognise the edge-retalk label."""
    check_readable(path)
    try:
        with av.open(str(path)) as container:
            metadata = dict(container.metadata)
            streams = []
            for stream in container.streams:
                ctx = stream.codec_context
                if stream.type == "video":
                    streams.append(f"video {ctx.name} {ctx.width}x{ctx.height} {float(stream.average_rate or 0):.2f} fps")
                elif stream.type == "audio":
                    streams.append(f"audio {ctx.name} {ctx.sample_rate} Hz {ctx.layout.nb_channels} ch")
    except av.error.FFmpegError:
        raise EdgeRetalkError(f"{path}: not a readable media file") from None
    match = LABEL_PATTERN.search(metadata.get("comment", ""))
    return Inspection(path, match is not None, match and match["version"], match and match["generator"],
                      metadata, streams)


def draw_watermark(frame: np.ndarray) -> np.ndarray:
    """A small, half-transparent 'AI-generated' label in the bottom-right corner (in place)."""
    height, width = frame.shape[:2]
    scale = max(0.35, min(width, height) / 900)
    thickness = max(1, round(scale * 2))
    (text_w, text_h), base = cv2.getTextSize(WATERMARK_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = max(4, round(8 * scale))
    x0, y0 = width - text_w - 2 * margin, height - text_h - base - 2 * margin
    if x0 < 0 or y0 < 0:
        return frame
    box = frame[y0:, x0:]
    box[:] = (box.astype(np.uint16) // 2).astype(np.uint8)
    cv2.putText(frame, WATERMARK_TEXT, (x0 + margin, height - base - margin), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness, cv2.LINE_AA)
    return frame
