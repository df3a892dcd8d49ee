"""Recipes that make edge-retalk's own models from real footage (PyTorch side, like `export`).

`footage` turns talking-head clips into cached per-frame landmarks, lower-face crops and audio;
`lip_shape` trains the audio-to-lip-shape network; `renderer` trains the mouth renderer. Their
outputs are checkpoints that `edge-retalk export` converts like any other.
"""
