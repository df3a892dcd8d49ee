"""Media in and out, and the threads around it: opening face videos and photos, decoding audio,
writing the mp4 atomically, background decode/encode workers with the stop-on-first-signal
machinery, silencing native stderr, and the per-stage timing that `bench` collects.
"""
