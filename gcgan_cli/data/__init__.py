"""Dataset formats and the eye-strip pipeline: readers, landmarks, masks, crop, synthetic faces.

A library layer like `core`: no UI, no torch (worker processes import it cheaply).
"""
