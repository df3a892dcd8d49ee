"""Saying that a video is synthetic: the metadata label, C2PA Content Credentials and the invisible
watermark, and reading all three back (`edge-retalk inspect`).
"""
