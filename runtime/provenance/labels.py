"""Marking generated video as synthetic, and reading the marks back (`edge-retalk inspect`).

Every labelled video carries three marks unless the user declines them with `--no-label`: container
metadata (the mp4 `comment` tag), Content Credentials (a signed C2PA manifest, `content_credentials`)
and an invisible watermark in the picture (`watermark`), the one that survives re-encoding. A visible
"AI-generated" label is optional (`--watermark`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from .. import __version__
from . import watermark
from .content_credentials import (TRAINED_ALGORITHMIC_MEDIA, Credentials, SigningKey, configured_signing_key,
                                  read_credentials, sign_video)
from ..errors import EdgeRetalkError
from ..io.media import check_readable

LABEL_PATTERN = re.compile(r"synthetic: lip-synced by edge-retalk (?P<version>\S+) \(generator (?P<generator>[^)]+)\)")
WATERMARK_TEXT = "AI-generated"


UNLABELLED_NOTE = "unlabelled: no metadata tag, no Content Credentials and no invisible watermark in the output"


@dataclass(frozen=True)
class SyntheticLabel:
    """The marks one output gets: what made it, and the key that signs its Content Credentials
    (None: the self-signed test key, made only when a finished output is signed)."""

    generator: str
    signing_key: SigningKey | None = None

    def metadata(self) -> dict[str, str]:
        """Container metadata (the mp4 `comment` tag, which ffprobe shows)."""
        return {"comment": f"synthetic: lip-synced by edge-retalk {__version__} (generator {self.generator})"}

    def mark(self, frame: np.ndarray) -> np.ndarray:
        """The frame with the invisible watermark."""
        return watermark.embed(frame)

    def sign(self, source: Path, destination: Path) -> None:
        """`source` as `destination`, with signed Content Credentials."""
        sign_video(source, destination, self.signing_key or configured_signing_key(), self.generator)


@dataclass(frozen=True)
class Inspection:
    """What a media file says about itself: the metadata tag, Content Credentials and watermark."""

    path: Path
    labelled: bool
    version: str | None
    generator: str | None
    credentials: Credentials
    watermark: watermark.WatermarkReading | None
    metadata: dict[str, str]
    streams: list[str]

    @property
    def synthetic(self) -> bool:
        """A mark that cannot be forged by editing metadata says it is generated: valid Content
        Credentials naming trained algorithmic media, or the watermark. The tag alone is a claim
        anyone can write (`ffmpeg -metadata comment=...`)."""
        source_type = TRAINED_ALGORITHMIC_MEDIA.rsplit("/", 1)[-1]
        generated = self.credentials.state == "valid" and any(source_type in action
                                                               for action in self.credentials.actions)
        return generated or bool(self.watermark and self.watermark.present)

    def as_dict(self) -> dict:
        return {"file": str(self.path), "synthetic": self.synthetic, "labelled": self.labelled,
                "version": self.version, "generator": self.generator,
                "content_credentials": self.credentials.as_dict(),
                "watermark": self.watermark and {"present": self.watermark.present, "score": round(self.watermark.score, 2),
                                                 "threshold": self.watermark.threshold, "frames": self.watermark.frames},
                "metadata": self.metadata, "streams": self.streams}


def inspect_file(path: Path) -> Inspection:
    """Read a file's container metadata and streams, validate its Content Credentials, look for the watermark."""
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
    reading = watermark.detect(path) if any(stream.startswith("video") for stream in streams) else None
    return Inspection(path, match is not None, match and match["version"], match and match["generator"],
                      read_credentials(path), reading, metadata, streams)


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
