"""Frames to MP4 and GIF: the writers, ``robopref render`` and ``robopref video``."""
