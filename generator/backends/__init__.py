"""Render backends that ship with codirector; each is registered lazily by name in `codirector.generator.registry`."""
