"""The face in a frame: tracking (detector + 468-point mesh), face sources (a photo, or a video looped
back and forth, with its landmarks), named landmark sets, the face-normalised frame that the learned
networks share, and the idle motion that brings a photo avatar to life.
"""
