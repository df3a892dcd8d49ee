"""`edge-retalk eval`: lip-sync quality with the real mouth hidden from the generator, its metrics
(from the face mesh and the audio, no learned scorer) and its report.
"""
