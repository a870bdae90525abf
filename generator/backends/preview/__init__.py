"""The embedded CPU preview backend: reference images animated with a camera, audio-driven mouths and idle motion."""

from codirector.generator.backends.preview.backend import PreviewBackend

__all__ = ["PreviewBackend"]
