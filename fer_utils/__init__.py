"""Reproduction of 'How far Generated Data Can Impact Neural Networks Performance?' (VISAPP 2023).

Shared helpers behind the notebooks in ``notebooks/``: configuration, the embedded face world,
dataset adapters, preprocessing, models, GANs, training, evaluation and plots.
"""
__version__ = "0.2.0"  # 0.2: the world is drawn by the torch renderer
