"""Signal analysis behind the offline director's audio and visual experts (KlingAvatar 2.0 sec. 3.2).

No language model and no network: faster-whisper transcribes, librosa measures the voice, OpenCV reads the images,
and rules turn the measurements into the `AudioReport` and `VisualReport` contracts. LLM experts start from these
same reports, so every provider sees the same measured facts.
"""

from __future__ import annotations

from codirector.agents.analysis.audio import analyze_track
from codirector.agents.analysis.speech import Transcript, transcribe, whisper_model_dir
from codirector.agents.analysis.vision import analyze_images

__all__ = ["Transcript", "analyze_images", "analyze_track", "transcribe", "whisper_model_dir"]
