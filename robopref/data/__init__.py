"""Rollouts, the queries cut from them, preference datasets, and ``robopref collect``."""
