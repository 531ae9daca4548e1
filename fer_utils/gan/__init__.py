"""GANs of paper §3.1: StyleGAN2 identities, StarGAN expressions, and their weight formats."""
from .stargan import Discriminator as StarGANDiscriminator
from .stargan import Generator as StarGANGenerator
from .stylegan2 import Discriminator as StyleGAN2Discriminator
from .stylegan2 import Generator as StyleGAN2Generator

__all__ = ["StarGANDiscriminator", "StarGANGenerator", "StyleGAN2Discriminator", "StyleGAN2Generator"]
