"""The cascade's stages, one per module, in the order they run (KlingAvatar 2.0 sec. 3.1): blueprint,
select_keyframes, upscale_keyframes, subclips, transitions, super_resolve, compose."""
