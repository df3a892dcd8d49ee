"""Inference engines, one module per runtime."""
