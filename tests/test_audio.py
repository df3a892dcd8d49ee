"""Audio decoding and the Wav2Lip log-mel, checked against librosa on real speech."""


import numpy as np
import pytest

from conftest import manifest
from edge_retalk.audio.features import frame_energy_db, log_mel, mel_window, mel_window_start
from edge_retalk.errors import EdgeRetalkError
from edge_retalk.io.media import load_audio

SPEECH = [row for row in manifest("speech")]


def librosa_reference(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip's audio.melspectrogram written with librosa (reflect-padded STFT, as Wav2Lip's librosa did)."""
    librosa = pytest.importorskip("librosa")
    emphasised = np.append(samples[:1], samples[1:] - 0.97 * samples[:-1])
    spectrum = np.abs(librosa.stft(emphasised, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect"))
    mel = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) @ spectrum
    level = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * ((level + 100) / 100) - 4, -4, 4)


@pytest.mark.parametrize("name", ["retalking_audio2.wav", "whisper_jfk.flac", "fw_hotwords.mp3", "wsj_n800_440c0202.wav"])
def test_log_mel_matches_librosa(data, name):
    samples = load_audio(data / "speech" / name)
    ours = log_mel(samples)
    assert ours.shape == librosa_reference(samples).shape
    np.testing.assert_allclose(ours, librosa_reference(samples), atol=1e-3)


@pytest.mark.parametrize("row", SPEECH, ids=[r["file"] for r in SPEECH])
def test_every_speech_format_decodes_to_16k_mono(data, row):
    samples = load_audio(data / "speech" / row["file"])
    assert samples.ndim == 1 and samples.dtype == np.float32
    assert abs(samples.size / 16000 - float(row["seconds"])) < 0.1
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.5


def test_audio_track_of_a_video(data):
    samples = load_audio(data / "clips" / "grid_bbaf2n.mpg")
    assert abs(samples.size / 16000 - 3.0) < 0.1


def test_mel_window_follows_wav2lip_indexing():
    mel = np.arange(80 * 100, dtype=np.float32).reshape(80, 100)
    assert mel_window_start(10, 25.0) == 32
    assert mel_window_start(7, 29.97) == int(7 * 80 / 29.97)
    window = mel_window(mel, 10, 25.0)
    assert window.shape == (80, 16) and window[0, 0] == 32
    assert (mel_window(mel, 1000, 25.0) == mel[:, -1:]).all()


def test_energy_separates_speech_from_silence(data):
    speech = load_audio(data / "speech" / "retalking_audio1.wav")[:16000]
    samples = np.concatenate([np.zeros(16000, np.float32), speech])
    energy = frame_energy_db(samples, 25.0, 50)
    assert energy[:25].max() < -100 and np.median(energy[25:]) > -40


def test_audio_without_samples_is_refused(tmp_path):
    import wave
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
    with pytest.raises(EdgeRetalkError, match="no samples"):
        load_audio(empty)
