"""Reference locally connected and tiled convolution in plain NumPy (part of `fastconv.reference`)."""
__all__ = []
