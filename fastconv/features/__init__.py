"""Kernels without back-propagation: hand-designed, Gabor, random and k-means (sections 9.9-9.10)."""
