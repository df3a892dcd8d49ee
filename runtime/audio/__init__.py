"""Audio, from samples to what the mouth should do: features (log-mel, energy), the mouth-opening
regressor of the painted renderer, and the lip-shape space the learned networks speak in.
"""
