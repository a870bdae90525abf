"""The spatio-temporal cascade (KlingAvatar 2.0 sec. 3.1): stages, backends, executors and media IO.

It reads a `codirector.schemas.RenderPlan` and writes a video with a `codirector.schemas.RenderManifest`. It never
imports the director. torch is imported only inside the backends that need it.
"""
