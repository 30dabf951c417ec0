"""Pooling (section 9.3): max, average, Lp, distance-weighted, adaptive, global and cross-channel."""
