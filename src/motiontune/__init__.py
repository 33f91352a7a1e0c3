"""motiontune: learn the motion of a reference video and replay it with a text-to-video diffusion model."""

__version__ = "0.1.0"
