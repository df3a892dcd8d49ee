"""Piper voices (VITS, exported to ONNX with a `.onnx.json` beside them) run by our own code.

The `piper-tts` package is GPL-3.0 and is never imported: this is the part of it that says a
phoneme sequence, on onnxruntime. Phonemes come from espeak-ng (`phonemes.py`), ids from the
voice's own `phoneme_id_map` (beginning, end and a pad after every phoneme, as Piper trains).

The voice's graph knows how long it holds each phoneme (the duration predictor's rounded frame
counts, its `Ceil` node) but does not output it; that node is added as a second output when the
voice is loaded (with `onnx`), so every phone's timing comes exactly from the synthesis itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..audio.visemes import Phone
from ..errors import EdgeRetalkError
from .phonemes import phonemize

log = logging.getLogger(__name__)

DURATIONS = "/Ceil_output_0"
"""Frames per phoneme id in a Piper VITS export (rounded up durations of the predictor)."""
BOS, EOS, PAD = "^", "$", "_"
SKIPPED = {"ˈ", "ˌ"}
"""Stress marks: ids of their own, their time folded into the next phone."""
LENGTH = "ː"
"""The length mark lengthens the phone before it."""


def _session(model: Path, threads: int):
    """An onnxruntime session of `model`, with the phoneme durations as a second output where the
    graph has them; and whether it does."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise EdgeRetalkError("a Piper voice needs onnxruntime: pip install 'edge-retalk[tts]'") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source: str | bytes = str(model)
    durations = False
    try:
        import onnx

        graph = onnx.load(str(model))
        if any(DURATIONS in node.output for node in graph.graph.node):
            graph.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None))
            source, durations = graph.SerializeToString(), True
    except ImportError:
        log.info("onnx is not installed: phone timing will come from alignment, not from the voice")
    except Exception as exc:  # noqa: BLE001 - any unreadable graph is refused below by onnxruntime
        log.info("%s: durations not found (%s)", model, exc)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"]), durations
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise EdgeRetalkError(f"{model}: not a loadable Piper voice ({str(exc).splitlines()[0][:120]})") from None


class PiperVoice:
    """A Piper voice: `model` (.onnx) with its config (`model`.json by default). Load once, then
    `say` sentence after sentence."""

    def __init__(self, model: Path, config: Path | None = None, threads: int = 1):
        config = config or model.with_name(model.name + ".json")
        try:
            settings = json.loads(config.read_text())
            self.sample_rate = int(settings["audio"]["sample_rate"])
            self.ids: dict[str, list[int]] = settings["phoneme_id_map"]
            inference = settings.get("inference", {})
            self.espeak_voice = settings.get("espeak", {}).get("voice", "en-us")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EdgeRetalkError(f"{config}: not a Piper voice config ({exc.__class__.__name__})") from None
        if settings.get("phoneme_type", "espeak") != "espeak":
            raise EdgeRetalkError(f"{config}: phoneme_type {settings['phoneme_type']!r}; only espeak voices are read")
        self.scales = np.array([inference.get("noise_scale", 0.667), inference.get("length_scale", 1.0),
                                inference.get("noise_w", 0.8)], np.float32)
        self.session, self.has_durations = _session(model, threads)
        self.name = model.stem

    def _ids(self, phonemes: str) -> tuple[list[int], list[tuple[int, str]]]:
        """Model ids, and (position of its id, symbol) for every phoneme kept."""
        ids, where = list(self.ids[BOS]) + list(self.ids[PAD]), []
        for symbol in phonemes:
            if symbol not in self.ids:
                continue
            where.append((len(ids), symbol))
            ids += self.ids[symbol] + self.ids[PAD]
        return ids + list(self.ids[EOS]), where

    def say(self, sentence: str) -> tuple[np.ndarray, list[Phone] | None]:
        """One sentence spoken: float32 mono at `sample_rate`, and its phones timed by the voice
        (None when the graph gave no durations)."""
        ids, where = self._ids(phonemize(sentence, self.espeak_voice))
        x = np.array([ids], np.int64)
        outputs = self.session.run(None, {"input": x, "input_lengths": np.array([x.shape[1]], np.int64),
                                          "scales": self.scales})
        audio = outputs[0].reshape(-1).astype(np.float32)
        if not self.has_durations:
            return audio, None
        frames = outputs[1].reshape(-1)
        hop = audio.size / max(frames.sum(), 1)
        ends = np.cumsum(frames) * hop / self.sample_rate
        return audio, _phones(where, ends)


def _phones(where: list[tuple[int, str]], ends: np.ndarray) -> list[Phone]:
    """Phones from id positions and the cumulative end time of every id: a phone lasts from its
    id's start to the end of the pad after it; stress marks go, a length mark lengthens."""
    phones: list[Phone] = []
    for position, symbol in where:
        start, end = (ends[position - 1] if position else 0.0), ends[position + 1]
        if symbol in SKIPPED:
            continue
        if symbol == LENGTH and phones:
            phones[-1] = Phone(phones[-1].symbol + LENGTH, phones[-1].start, float(end))
        else:
            phones.append(Phone(symbol, float(start), float(end)))
    return phones
