"""Reference pooling in plain NumPy (part of `fastconv.reference`)."""
__all__ = []
