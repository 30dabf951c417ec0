"""Locally connected (unshared, eq. 9.9) and tiled (eq. 9.10) convolution with both gradients."""
