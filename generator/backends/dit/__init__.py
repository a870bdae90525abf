"""The neural `dit` backend: an audio-driven video DiT on diffusers' Wan classes (KlingAvatar 2.0 sec. 3.1-3.4,
Kling-Avatar sec. 2.4). torch and diffusers are imported only when a pipeline is built, not by this import."""

from codirector.generator.backends.dit.backend import DitBackend

__all__ = ["DitBackend"]
