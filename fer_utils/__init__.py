"""Reproduction of 'How far Generated Data Can Impact Neural Networks Performance?' (VISAPP 2023).

Shared helpers behind the notebooks in ``notebooks/``: configuration, the embedded face world,
dataset adapters, preprocessing, models, GANs, training, evaluation and plots.
"""
__version__ = "0.1.0"
