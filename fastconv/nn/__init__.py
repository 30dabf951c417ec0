"""Layers, losses, optimizers and training (`fastconv.nn`)."""
