"""Reproduction of 'How far Generated Data Can Impact Neural Networks Performance?' (VISAPP 2023).

Shared helpers behind the notebooks in ``notebooks/``: configuration, the embedded face world,
dataset adapters, preprocessing, models, GANs, training, evaluation and plots.
"""
__version__ = "0.3.0"  # 0.3: the world's faces carry FACS appearance changes, relief, light and skin
