"""The co-reasoning director (KlingAvatar 2.0 sec. 3.2): audio, visual and text experts and a negative director.

It reads a `codirector.schemas.Job` and writes a `codirector.schemas.Storyline`. It never imports the generator.
"""
