"""Engines behind small interfaces, and the registry that loads them once at server start."""
