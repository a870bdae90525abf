"""Published Wan image-to-video checkpoints as they lie on disk: what a folder holds, checked before anything loads.

A diffusers-format Wan folder (`Wan2.1-I2V-14B-480P-Diffusers`, `...-720P-Diffusers`,
`Wan2.1-FLF2V-14B-720P-diffusers`, `Wan2.2-I2V-A14B-Diffusers`) names its parts in `model_index.json`:
`[library, class]` per part, each part in a sub-folder of that name. `WanCheckpoint.open` reads that index, tells the
family apart from the transformer's config, and refuses a folder that lacks a part the family needs, naming it.
`load_components` then builds every part with the class the index names (as `DiffusionPipeline.from_pretrained`
does), our audio-driven transformer in place of `WanTransformer3DModel`. An original-format transformer file (the
single `.safetensors` ComfyUI and Wan2GP users keep) loads through diffusers' single-file loader, with the folder's
config.

Families (diffusers' `WanImageToVideoPipeline` serves all three; tested against diffusers 0.42):
- Wan2.1 I2V: one transformer with a CLIP image branch (`image_dim`), one image embedding (the first frame);
- Wan2.1 FLF2V: the same with `pos_embed_seq_len` set: two image embeddings (first and last frame);
- Wan2.2 I2V-A14B: two experts (`transformer` for high noise, `transformer_2` below `boundary_ratio`), no image
  encoder.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codirector.errors import ConfigError

__all__ = ["Family", "WanCheckpoint", "WanComponents", "index_parts", "library_class", "load_components", "read_json"]

logger = logging.getLogger(__name__)

Family = Literal["wan2.1-i2v", "wan2.1-flf2v", "wan2.2-i2v"]

RESTORE_FIX = "Restore the file from the download."
FOLDER_FIX = (
    "Point weights= at a diffusers-format Wan image-to-video folder as downloaded (Wan2.1-I2V-14B-480P-Diffusers)."
)
_WEIGHT_FILES = {
    "diffusers": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                  "diffusion_pytorch_model.bin"),
    "transformers": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json"),
}  # fmt: skip
_MARKERS = {
    "tokenizer": ("tokenizer.json", "spiece.model", "tokenizer_config.json"),
    "scheduler": ("scheduler_config.json",),
    "image_processor": ("preprocessor_config.json",),
}


def read_json(path: Path, source: str) -> dict[str, Any]:
    """A JSON object from `path`; ConfigError naming `source` when it is missing, the file when it is broken."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, f"has no {path.name}", FOLDER_FIX) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(str(path), f"cannot be read as JSON ({error})", RESTORE_FIX) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "is not a JSON object", RESTORE_FIX)
    return data


def index_parts(index: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """model_index.json's parts: name -> (library, class). A part a pipeline leaves out is saved as [null, null]
    (Wan2.1's transformer_2, Wan2.2's image_encoder) and is not a part."""
    return {
        name: (str(value[0]), str(value[1]))
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0] and value[1]
    }


def library_class(library: str, name: str, *, part: str, root: Path) -> Any:
    """The class `name` from `library` (diffusers or transformers), as model_index.json names it for `part`."""
    if library not in ("diffusers", "transformers"):
        raise ConfigError(f"dit weights {root}", f"names {part} from library {library!r}",
                          "Use a folder whose parts come from diffusers or transformers.")  # fmt: skip
    kind = getattr(importlib.import_module(library), name, None)
    if kind is None:
        raise ConfigError(f"dit weights {root}", f"names {part} class {library}.{name}, which this "
                          f"{library} does not have", f"Upgrade {library} (pip install -U {library}).")  # fmt: skip
    return kind


@dataclass(frozen=True)
class WanCheckpoint:
    """A checked Wan image-to-video folder (nothing loaded yet).

    Attributes:
        root: the folder.
        family: which published family it is.
        parts: part name -> (library, class name) from model_index.json, for the parts present.
        transformer_config: transformer/config.json.
        boundary_ratio: Wan2.2's switch between the two experts (share of the training timesteps), else None.
        image_embeddings: CLIP embeddings the transformer takes: 0 (no image branch), 1 (I2V) or 2 (FLF2V).
        transformer_file: an original-format transformer file to load instead of transformer/'s weights.
    """

    root: Path
    family: Family
    parts: dict[str, tuple[str, str]]
    transformer_config: dict[str, Any]
    boundary_ratio: float | None
    image_embeddings: int
    transformer_file: Path | None = None

    @classmethod
    def open(cls, root: str | Path, transformer_file: str | Path | None = None) -> WanCheckpoint:
        """Read and check a folder; raise ConfigError naming the missing or unsupported part."""
        root = Path(root).expanduser()
        source = f"dit weights {root}"
        if not root.is_dir():
            raise ConfigError(source, "is not a folder", FOLDER_FIX)
        index = read_json(root / "model_index.json", source)
        parts = index_parts(index)
        file = None
        if transformer_file is not None:
            file = Path(transformer_file).expanduser()
            if not file.is_file():
                raise ConfigError(f"dit transformer {file}", "is not a file",
                                  "Pass the original-format .safetensors file of the transformer.")  # fmt: skip
        config = read_json(root / "transformer" / "config.json", f"{source} transformer/")
        if config.get("in_channels") != 36:
            raise ConfigError(
                source, f"holds a transformer with in_channels={config.get('in_channels')}, not an image-to-video one "
                "(36: noisy latents, frame mask, condition latents)",
                "Use a Wan image-to-video or first-last-frame folder (I2V-14B-480P/720P, FLF2V-14B-720P, I2V-A14B).",
            )  # fmt: skip
        if index.get("expand_timesteps"):
            raise ConfigError(source, "is a Wan2.2 TI2V folder (expand_timesteps), which this backend does not run",
                              "Use a Wan2.1 I2V/FLF2V or Wan2.2 I2V-A14B folder.")  # fmt: skip
        boundary = index.get("boundary_ratio")
        image_embeddings = 0 if config.get("image_dim") is None else 2 if config.get("pos_embed_seq_len") else 1
        family: Family = "wan2.2-i2v" if boundary is not None else "wan2.1-flf2v" if image_embeddings == 2 else (
            "wan2.1-i2v")  # fmt: skip
        required = ["transformer", "vae", "text_encoder", "tokenizer", "scheduler"]
        if image_embeddings:
            required += ["image_encoder", "image_processor"]
        if boundary is not None:
            required.append("transformer_2")
        checkpoint = cls(root, family, parts, config, None if boundary is None else float(boundary),
                         image_embeddings, file)  # fmt: skip
        for part in required:
            checkpoint._check_part(part)
        return checkpoint

    def _check_part(self, part: str) -> None:
        source = f"dit weights {self.root}"
        if part not in self.parts:
            raise ConfigError(source, f"model_index.json names no {part} (a {self.family} folder needs it)", FOLDER_FIX)
        folder = self.root / part
        if not folder.is_dir():
            named = self.parts[part][1]
            raise ConfigError(source, f"has no {part}/ folder (model_index.json names {named})", FOLDER_FIX)
        library = self.parts[part][0]
        if part in _MARKERS:
            wanted = _MARKERS[part]
        else:
            if not (folder / "config.json").is_file():
                raise ConfigError(source, f"has no {part}/config.json", FOLDER_FIX)
            if part == "transformer" and self.transformer_file is not None:
                return
            wanted = _WEIGHT_FILES.get(library, ())
        if wanted and not any((folder / name).is_file() for name in wanted):
            raise ConfigError(source, f"{part}/ holds none of {', '.join(wanted)}",
                              "Finish the download of that part (its weights or config are missing).")  # fmt: skip

    def part_class(self, part: str) -> Any:
        """The class model_index.json names for `part`, from its library (diffusers or transformers)."""
        return library_class(*self.parts[part], part=part, root=self.root)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the weights."""
        return {
            "path": str(self.root), "family": self.family, "boundary_ratio": self.boundary_ratio,
            "image_embeddings": self.image_embeddings,
            "transformer_file": None if self.transformer_file is None else str(self.transformer_file),
        }  # fmt: skip


@dataclass
class WanComponents:
    """The loaded parts of a Wan image-to-video checkpoint (or of a tiny random one).

    `transformer_2` and `boundary_ratio` are Wan2.2's low-noise expert and its switch; `image_encoder` and
    `image_processor` are the CLIP image branch of Wan2.1 (None for Wan2.2).
    """

    transformer: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    image_encoder: Any = None
    image_processor: Any = None
    transformer_2: Any = None
    boundary_ratio: float | None = None
    image_embeddings: int = 0


def _load_transformer(checkpoint: WanCheckpoint, part: str, dtype: Any, adapter: Path | None) -> Any:
    from codirector.generator.backends.dit.model import AudioWanTransformer3DModel

    folder = checkpoint.root / part
    if checkpoint.transformer_file is not None and part == "transformer":
        return AudioWanTransformer3DModel.from_single_file_with_config(
            checkpoint.transformer_file, folder, torch_dtype=dtype, adapter_path=adapter
        )
    # without audio weights no audio module is built: they would be zero (4.4 B parameters for 14B)
    audio = {} if adapter is not None else {"with_audio": False}
    return AudioWanTransformer3DModel.from_pretrained(folder, torch_dtype=dtype, adapter_path=adapter, **audio)


def load_components(checkpoint: WanCheckpoint, *, dtype: Any, adapter: str | Path | None = None) -> WanComponents:
    """Load every part of `checkpoint` on the CPU: transformer(s) and text encoder in `dtype`, VAE and CLIP image
    encoder in float32 (as Wan and diffusers' examples run them). Nothing is downloaded (`local_files_only`)."""
    import torch

    root = checkpoint.root
    adapter_path = None if adapter is None else Path(adapter)
    transformer = _load_transformer(checkpoint, "transformer", dtype, adapter_path)
    transformer_2 = None
    if checkpoint.boundary_ratio is not None:
        transformer_2 = _load_transformer(checkpoint, "transformer_2", dtype, adapter_path)
    vae = checkpoint.part_class("vae").from_pretrained(root / "vae", torch_dtype=torch.float32)
    text_encoder = checkpoint.part_class("text_encoder").from_pretrained(
        root / "text_encoder", dtype=dtype, local_files_only=True
    )
    tokenizer = checkpoint.part_class("tokenizer").from_pretrained(root / "tokenizer", local_files_only=True)
    scheduler = checkpoint.part_class("scheduler").from_pretrained(root / "scheduler")
    image_encoder = image_processor = None
    if checkpoint.image_embeddings:
        image_encoder = checkpoint.part_class("image_encoder").from_pretrained(
            root / "image_encoder", dtype=torch.float32, local_files_only=True
        )
        image_processor = checkpoint.part_class("image_processor").from_pretrained(
            root / "image_processor", local_files_only=True
        )
    return WanComponents(
        transformer=transformer, vae=vae, text_encoder=text_encoder.eval(), tokenizer=tokenizer, scheduler=scheduler,
        image_encoder=None if image_encoder is None else image_encoder.eval(), image_processor=image_processor,
        transformer_2=transformer_2, boundary_ratio=checkpoint.boundary_ratio,
        image_embeddings=checkpoint.image_embeddings,
    )  # fmt: skip
