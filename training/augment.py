"""Speech augmentation for training: the same words as a noisier, more reverberant microphone would
hear them, so the models learn from the mouth's sound and not from one recording's acoustics."""

from __future__ import annotations

import numpy as np

from ..audio.features import SAMPLE_RATE


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White or pink noise at `snr_db` below the speech's power."""
    noise = rng.standard_normal(samples.size).astype(np.float32)
    if rng.random() < 0.5:
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        noise = np.fft.irfft(spectrum, n=samples.size).astype(np.float32)
    power = float(np.mean(samples ** 2)) + 1e-12
    noise *= np.sqrt(power / (float(np.mean(noise ** 2)) + 1e-12) / 10 ** (snr_db / 10))
    return samples + noise


def add_reverb(samples: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise as impulse response, direct path kept."""
    length = int(rt60_s * SAMPLE_RATE)
    decay = np.exp(-6.9 * np.arange(length) / length)
    response = rng.standard_normal(length) * decay * 0.3
    response[0] = 1.0
    wet = np.fft.irfft(np.fft.rfft(samples, samples.size + length) * np.fft.rfft(response, samples.size + length))
    wet = wet[: samples.size].astype(np.float32)
    return wet * np.sqrt((np.mean(samples ** 2) + 1e-12) / (np.mean(wet ** 2) + 1e-12))


def augmented_versions(samples: np.ndarray, seed: int) -> list[np.ndarray]:
    """The clean speech and two degraded copies (noise; room, noise and a gain change)."""
    rng = np.random.default_rng(seed)
    noisy = add_noise(samples, rng.uniform(8, 25), rng)
    room = add_noise(add_reverb(samples, rng.uniform(0.2, 0.6), rng), rng.uniform(15, 30), rng)
    return [samples, noisy, room * 10 ** (rng.uniform(-12, 6) / 20)]
