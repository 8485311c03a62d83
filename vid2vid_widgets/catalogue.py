"""The model catalogue: named presets for the generators and captioners a person can choose.

Each preset says what it downloads (ids, revision, size), under which license, what it runs on (the
backend or captioner class, and its tiny twin for tests), and the settings that suit it. Nothing is
loaded here: ``make_generator`` and ``make_captioner`` build lazy objects that load through
``models.REGISTRY`` on first use, and import their class only then.

Resolution, in one place (``resolve_generator``):

* a preset name or alias ("zeroscope-576w", "zeroscope") -> that preset;
* a hub id or local folder -> the chosen backend (default "diffusers") with that id; when the id is a
  preset's own model id on that backend, that preset (so its defaults apply);
* nothing -> the backend's default preset ("modelscope-1.7b" for "diffusers").

Revisions: ``None`` everywhere means the hub's ``main`` branch at download time.

Download sizes are bytes of the files the loader fetches on a CUDA GPU. "computed": parameter counts
of the published architecture (built on the meta device, as ``benchmarks/bench_downloads.py`` does)
times the bytes per value of the downloaded files; "card": the file sizes listed on the model page.
``benchmarks/bench_presets.py`` recounts the computed ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import InvalidSettingsError
from .generation.base import GenerationSettings

GB = 1e9
_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(GenerationSettings))


def _frozen(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class GeneratorPreset:
    """One text-to-video choice: what it downloads, its license, its defaults and what it can do."""

    name: str
    backend: str  # a key of generation.BACKENDS
    model_id: str
    architecture: str
    license: str
    license_url: str
    download_bytes: int
    download_source: str  # how download_bytes was found: "computed: ..." or "card: ..."
    defaults: Mapping[str, Any]  # GenerationSettings fields that differ from GenerationSettings()
    video_to_video: bool
    t4_note: str
    tiny_role: str
    revision: Optional[str] = None  # None: the hub's main branch
    # More constructor arguments of the backend's class (motion adapter, scheduler overrides...).
    options: Mapping[str, Any] = field(default_factory=dict)
    # The same arguments for the tiny twin; values of _TINY_PATHS are folders inside the tiny model.
    tiny_options: Mapping[str, Any] = field(default_factory=dict)
    aliases: Tuple[str, ...] = ()
    commercial_use: bool = True
    summary: str = ""

    @property
    def model_ids(self) -> List[str]:
        """Every hub id this preset downloads (base model first)."""
        ids = [self.model_id]
        if self.options.get("motion_adapter"):
            ids.append(str(self.options["motion_adapter"]))
        return ids

    def settings(self, **given: Any) -> GenerationSettings:
        """``GenerationSettings()`` with this preset's defaults, then ``given`` on top (given wins)."""
        return GenerationSettings(**{**self.defaults, **given})

    def license_text(self) -> str:
        return self.license if self.commercial_use else f"{self.license} (non-commercial)"


@dataclass(frozen=True)
class CaptionerPreset:
    """One captioner choice. ``factory`` is "module:Class", imported only when the captioner is built."""

    name: str
    model_id: str
    factory: str
    architecture: str
    license: str
    license_url: str
    download_bytes: int
    download_source: str
    tiny_role: str
    t4_note: str
    revision: Optional[str] = None  # None: the hub's main branch
    aliases: Tuple[str, ...] = ()
    commercial_use: bool = True
    summary: str = ""

    @property
    def model_ids(self) -> List[str]:
        return [self.model_id]

    def license_text(self) -> str:
        return self.license if self.commercial_use else f"{self.license} (non-commercial)"


# -- parameter counts (millions) behind the computed sizes ------------------------------------------
# ModelScope 1.7B / zeroscope (same architecture): UNet3D 1411 M, VAE 84 M, OpenCLIP-H text 340 M.
_T2V_PARAMS = 1_411e6 + 83.65e6 + 340.4e6
# Stable Diffusion 1.5: UNet2D 859.5 M, VAE 83.7 M, CLIP-L text 123.1 M. Motion adapter (v2): 453.2 M.
_SD15_PARAMS = 859_520_964 + 83_653_863 + 123_060_480
_MOTION_ADAPTER_PARAMS = 453_209_280

SD15_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
LIGHTNING_REPO = "ByteDance/AnimateDiff-Lightning"
LIGHTNING_FILE = "animatediff_lightning_4step_diffusers.safetensors"

# The scheduler settings AnimateDiff was trained with (its model cards and diffusers' docs): linear
# betas. DDIM with "linspace" spacing for the base adapter; Euler with "trailing" spacing for Lightning.
ANIMATEDIFF_SCHEDULER = _frozen(beta_schedule="linear", clip_sample=False, timestep_spacing="linspace",
                                steps_offset=1)
LIGHTNING_SCHEDULER = _frozen(beta_schedule="linear", timestep_spacing="trailing")

_T2V_NEGATIVE = "blurry, low quality, text, watermark"
_SD_NEGATIVE = "bad quality, worse quality, blurry, text, watermark"

GENERATORS: Tuple[GeneratorPreset, ...] = (
    GeneratorPreset(
        name="modelscope-1.7b",
        backend="diffusers",
        model_id="ali-vilab/text-to-video-ms-1.7b",
        # https://huggingface.co/ali-vilab/text-to-video-ms-1.7b (license: cc-by-nc-4.0 on the card)
        license="CC-BY-NC-4.0",
        license_url="https://huggingface.co/ali-vilab/text-to-video-ms-1.7b",
        commercial_use=False,
        architecture="UNet3D + VAE + OpenCLIP-H text encoder (ModelScope T2V, diffusers layout)",
        download_bytes=int(_T2V_PARAMS * 2),
        download_source="computed: 1,835 M parameters x 2 bytes (fp16 variant, safetensors)",
        defaults=_frozen(),  # GenerationSettings() is this model's recipe
        video_to_video=True,
        t4_note="fp16 fits a T4 with room to spare at 16 frames of 256x256; often shows a 'shutterstock' watermark",
        tiny_role="text-to-video",
        aliases=("modelscope", "default"),
        summary="the default: quick and reliable, but often watermarked",
    ),
    GeneratorPreset(
        name="zeroscope-576w",
        backend="diffusers",
        model_id="cerspense/zeroscope_v2_576w",
        # https://huggingface.co/cerspense/zeroscope_v2_576w (license: cc-by-nc-4.0 on the card)
        license="CC-BY-NC-4.0",
        license_url="https://huggingface.co/cerspense/zeroscope_v2_576w",
        commercial_use=False,
        architecture="UNet3D + VAE + OpenCLIP-H text encoder (ModelScope T2V fine-tune, diffusers layout)",
        download_bytes=int(_T2V_PARAMS * 2),
        download_source="computed: 1,835 M parameters x 2 bytes (the repo's only files are fp16 .bin pickles; "
                        "card: unet 2.82 GB)",
        # The card: trained on 24 frames of 576x320; 7.9 GB of GPU memory for 30 frames.
        defaults=_frozen(num_frames=24, width=576, height=320, num_steps=25, guidance_scale=9.0, fps=8,
                         negative_prompt=_T2V_NEGATIVE),
        video_to_video=True,
        t4_note="about 8 GB of GPU memory at 24 frames of 576x320 (card: 7.9 GB for 30 frames): fits a T4",
        tiny_role="text-to-video",
        # The files are fp16 without a variant name: asking for "fp16" files would only fail first.
        options=_frozen(variant=None),
        tiny_options=_frozen(variant=None),
        aliases=("zeroscope",),
        summary="no watermark, 16:9",
    ),
    GeneratorPreset(
        name="animatediff",
        backend="animatediff",
        model_id=SD15_MODEL,
        # https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5 (creativeml-openrail-m);
        # motion adapter https://huggingface.co/guoyww/animatediff-motion-adapter-v1-5-2 (no license tag on the
        # card; AnimateDiff's weights are released under Apache-2.0 at https://github.com/guoyww/AnimateDiff)
        license="CreativeML-OpenRAIL-M + Apache-2.0",
        license_url="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
        architecture="Stable Diffusion 1.5 (UNet2D + VAE + CLIP-L) + AnimateDiff v2 motion adapter (UNetMotionModel)",
        download_bytes=int(_SD15_PARAMS * 2 + 1.82 * GB),
        download_source="computed: SD 1.5 1,066 M parameters x 2 bytes (fp16 variant) + card: adapter 1.82 GB",
        defaults=_frozen(num_frames=16, width=512, height=512, num_steps=25, guidance_scale=7.5, fps=8,
                         scheduler="ddim", negative_prompt=_SD_NEGATIVE),
        video_to_video=True,
        t4_note="fp16 at 16 frames of 512x512 needs about 10-12 GB on a T4; lower the size if it runs out",
        tiny_role="animatediff",
        options=_frozen(motion_adapter=MOTION_ADAPTER, scheduler_config=ANIMATEDIFF_SCHEDULER),
        tiny_options=_frozen(motion_adapter="motion_adapter", scheduler_config=ANIMATEDIFF_SCHEDULER),
        summary="sharp 512 px frames, no watermark",
    ),
    GeneratorPreset(
        name="animatediff-lightning",
        backend="animatediff",
        model_id=SD15_MODEL,
        # https://huggingface.co/ByteDance/AnimateDiff-Lightning (license: creativeml-openrail-m on the card)
        license="CreativeML-OpenRAIL-M",
        license_url="https://huggingface.co/ByteDance/AnimateDiff-Lightning",
        architecture="Stable Diffusion 1.5 + AnimateDiff-Lightning 4-step distilled motion adapter",
        download_bytes=int(_SD15_PARAMS * 2 + 0.908 * GB),
        download_source="computed: SD 1.5 1,066 M parameters x 2 bytes (fp16 variant) + card: 4-step adapter 908 MB",
        # The card's recipe: 4 steps, guidance 1.0 (no negative prompt), Euler with trailing timesteps.
        defaults=_frozen(num_frames=16, width=512, height=512, num_steps=4, guidance_scale=1.0, fps=8,
                         scheduler="euler"),
        video_to_video=True,
        t4_note="like animatediff, in a fifth of the denoising time (4 steps, no guidance batch)",
        tiny_role="animatediff",
        options=_frozen(motion_adapter=LIGHTNING_REPO, adapter_file=LIGHTNING_FILE,
                        scheduler_config=LIGHTNING_SCHEDULER),
        tiny_options=_frozen(motion_adapter="lightning", adapter_file=LIGHTNING_FILE,
                             scheduler_config=LIGHTNING_SCHEDULER),
        aliases=("lightning", "fast"),
        summary="fast: 4 steps",
    ),
    GeneratorPreset(
        name="modelscope-original",
        backend="modelscope",
        model_id="damo/text-to-video-synthesis",
        # https://modelscope.cn/models/iic/text-to-video-synthesis (license: cc-by-nc-4.0)
        license="CC-BY-NC-4.0",
        license_url="https://modelscope.cn/models/iic/text-to-video-synthesis",
        commercial_use=False,
        architecture="ModelScope T2V original checkpoint through the modelscope package",
        download_bytes=int(14.85 * GB),
        download_source="card: fp32 pickles 5.65 + 3.94 + 5.26 GB",
        defaults=_frozen(num_steps=50, scheduler="ddim"),
        video_to_video=True,
        t4_note="fp32 pickles, about 16 GB of GPU memory (card): too large for a T4; needs the modelscope extra",
        tiny_role="modelscope",
        summary="the original checkpoint (pip install \"vid2vid-widgets[modelscope]\")",
    ),
)

CAPTIONERS: Tuple[CaptionerPreset, ...] = (
    CaptionerPreset(
        name="blip-base",
        model_id="Salesforce/blip-image-captioning-base",
        factory="vid2vid_widgets.captioning:BlipCaptioner",
        # https://huggingface.co/Salesforce/blip-image-captioning-base (license: bsd-3-clause on the card)
        license="BSD-3-Clause",
        license_url="https://huggingface.co/Salesforce/blip-image-captioning-base",
        architecture="BLIP ViT-B image captioner, frame by frame, one consensus caption",
        download_bytes=int(247e6 * 4),
        download_source="computed: 247 M parameters x 4 bytes (fp32 safetensors)",
        tiny_role="captioner",
        t4_note="under 1 GB of GPU memory in fp16",
        aliases=("blip",),
        summary="the default",
    ),
    CaptionerPreset(
        name="blip-large",
        model_id="Salesforce/blip-image-captioning-large",
        factory="vid2vid_widgets.captioning:BlipCaptioner",
        # https://huggingface.co/Salesforce/blip-image-captioning-large (license: bsd-3-clause on the card)
        license="BSD-3-Clause",
        license_url="https://huggingface.co/Salesforce/blip-image-captioning-large",
        architecture="BLIP ViT-L image captioner, frame by frame, one consensus caption",
        download_bytes=int(470e6 * 4),
        download_source="computed: 470 M parameters x 4 bytes (fp32 safetensors)",
        tiny_role="captioner",
        t4_note="about 1 GB of GPU memory in fp16",
        summary="more detailed captions",
    ),
    CaptionerPreset(
        name="smolvlm2",
        model_id="HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
        factory="vid2vid_widgets.captioning_smolvlm:SmolVLMCaptioner",
        # https://huggingface.co/HuggingFaceTB/SmolVLM2-500M-Video-Instruct (license: apache-2.0 on the card)
        license="Apache-2.0",
        license_url="https://huggingface.co/HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
        architecture="SmolVLM2 video-language model (SigLIP + SmolLM2): watches the frames as one video",
        download_bytes=int(2.03 * GB),
        download_source="card: model.safetensors 2.03 GB",
        tiny_role="smolvlm",
        t4_note="about 1.8 GB of GPU memory for video (card); fp16 on a T4 (no bfloat16)",
        summary="describes what happens across the clip",
    ),
    CaptionerPreset(
        name="smolvlm2-256m",
        model_id="HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
        factory="vid2vid_widgets.captioning_smolvlm:SmolVLMCaptioner",
        # https://huggingface.co/HuggingFaceTB/SmolVLM2-256M-Video-Instruct (license: apache-2.0 on the card)
        license="Apache-2.0",
        license_url="https://huggingface.co/HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
        architecture="SmolVLM2 256M video-language model: the fast choice",
        download_bytes=int(256e6 * 4),
        download_source="computed: about 256 M parameters x 4 bytes (fp32 safetensors)",
        tiny_role="smolvlm",
        t4_note="about 1 GB of GPU memory; fp16 on a T4",
        summary="the fast video captioner",
    ),
)

DEFAULT_GENERATOR = "modelscope-1.7b"
DEFAULT_CAPTIONER = "blip-base"
# The preset a backend runs when only the backend is named.
_BACKEND_DEFAULTS = {"diffusers": "modelscope-1.7b", "animatediff": "animatediff", "modelscope": "modelscope-original"}
# tiny_options keys whose values are folders inside the tiny model folder.
_TINY_PATHS = ("motion_adapter",)


def _index(presets) -> Dict[str, Any]:
    names: Dict[str, Any] = {}
    for preset in presets:
        for name in (preset.name, *preset.aliases):
            assert name not in names, f"preset name {name!r} is used twice"
            names[name] = preset
    return names


_GENERATOR_NAMES = _index(GENERATORS)
_CAPTIONER_NAMES = _index(CAPTIONERS)


def generator_preset(name: str) -> Optional[GeneratorPreset]:
    """The generator preset called ``name`` (or one of its aliases); None when there is none."""
    return _GENERATOR_NAMES.get(str(name).strip().lower())


def captioner_preset(name: str) -> Optional[CaptionerPreset]:
    """The captioner preset called ``name`` (or one of its aliases); None when there is none."""
    return _CAPTIONER_NAMES.get(str(name).strip().lower())


def default_preset_for(backend: str) -> Optional[GeneratorPreset]:
    name = _BACKEND_DEFAULTS.get(backend)
    return generator_preset(name) if name else None


def _looks_like_an_id(value: str) -> bool:
    from .models import is_local_folder

    return "/" in value or is_local_folder(value)


def resolve_generator(
    model: Optional[str] = None, backend: Optional[str] = None,
) -> Tuple[str, Optional[str], Optional[GeneratorPreset]]:
    """(backend, model id or None, preset or None) for a preset name, hub id or folder, and a backend.

    Refuses a preset that runs on another backend than the one named, and a bare word that is
    neither a preset nor a hub id ("owner/name") nor a folder, listing the presets.
    """
    from .generation import BACKENDS, DEFAULT_BACKEND

    if backend is not None and backend not in BACKENDS:
        raise InvalidSettingsError(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    if model is None or not str(model).strip():
        preset = default_preset_for(backend or DEFAULT_BACKEND)
        return backend or DEFAULT_BACKEND, None, preset
    model = str(model).strip()
    preset = generator_preset(model)
    if preset is not None:
        if backend is not None and backend != preset.backend:
            raise InvalidSettingsError(
                f"The model {preset.name!r} runs on the {preset.backend!r} backend, not {backend!r}: leave the "
                f"backend out (it follows the model), or choose another model (vid2vid models lists them).")
        return preset.backend, preset.model_id, preset
    if not _looks_like_an_id(model):
        raise InvalidSettingsError(
            f"Unknown model {model!r}: give a preset name ({', '.join(p.name for p in GENERATORS)}), a hub id "
            "such as 'owner/name', or a local folder. `vid2vid models` lists the presets.")
    backend = backend or DEFAULT_BACKEND
    # An id that is a preset's own (on the same backend) gets that preset's defaults and options.
    same = [p for p in GENERATORS if p.model_id == model and p.backend == backend and not p.options.get("adapter_file")]
    return backend, model, (same[0] if len(same) == 1 else None)


def generator_arguments(preset: Optional[GeneratorPreset], model_id: Optional[str],
                        models: Optional[str]) -> Tuple[Optional[str], Dict[str, Any]]:
    """(model id, extra constructor arguments) for a preset, real or tiny.

    ``models="tiny"`` swaps a preset's ids for its tiny twin's folder, unless an id or folder was
    named explicitly (then that one is what the person asked for).
    """
    if preset is None:
        return model_id, {}
    if models != "tiny" or model_id not in (None, preset.model_id):
        return model_id if model_id is not None else preset.model_id, dict(preset.options)
    if not any(k in _TINY_PATHS for k in preset.tiny_options):
        # The backend finds its own tiny folder (the preset's tiny role is the backend's).
        return None, dict(preset.tiny_options)
    from .tiny import tiny_model_path

    return folder_arguments(preset, tiny_model_path(preset.tiny_role))


def folder_arguments(preset: GeneratorPreset, folder: str) -> Tuple[str, Dict[str, Any]]:
    """(model id, constructor arguments) of ``preset`` for a folder written by its ``tiny`` builder,
    at tiny or full size (``benchmarks/bench_presets.py`` loads full-size random folders so)."""
    options = {k: (os.path.join(folder, v) if k in _TINY_PATHS else v) for k, v in preset.tiny_options.items()}
    return folder, options


def make_generator(
    model: Optional[str] = None, *, backend: Optional[str] = None, models: Optional[str] = None,
    device: str = "auto", dtype: str = "auto",
) -> Tuple[Any, Optional[GeneratorPreset]]:
    """(generator, preset) for a preset name, hub id or folder; nothing is loaded yet."""
    from .generation import make_generator as make_backend

    backend, model_id, preset = resolve_generator(model, backend)
    model_id, options = generator_arguments(preset, model_id, models)
    generator = make_backend(backend, model_id, models=models, device=device, dtype=dtype, **options)
    return generator, preset


def make_captioner(
    name_or_id: Optional[str] = None, *, models: Optional[str] = None, device: str = "auto", dtype: str = "auto",
) -> Any:
    """The captioner for a preset name (default "blip-base"), a hub id or a local folder (BLIP).

    The class named by the preset's ``factory`` is imported here, not before: a captioner whose
    module is missing (an optional extra, a branch not installed) fails only when chosen.
    """
    preset = captioner_preset(name_or_id) if name_or_id else captioner_preset(DEFAULT_CAPTIONER)
    if preset is None:
        if not _looks_like_an_id(str(name_or_id)):
            raise InvalidSettingsError(
                f"Unknown captioner {name_or_id!r}: give a preset name ({', '.join(p.name for p in CAPTIONERS)}), "
                "a BLIP hub id such as 'Salesforce/blip-image-captioning-base', or a local folder.")
        factory, model_id = CAPTIONERS[0].factory, str(name_or_id)
    else:
        factory, model_id = preset.factory, preset.model_id
        if models == "tiny":
            from .tiny import tiny_model_path

            model_id = tiny_model_path(preset.tiny_role)
    module_name, class_name = factory.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise InvalidSettingsError(
            f"The captioner {name_or_id!r} needs {module_name}, which cannot be imported here ({err}); "
            "update vid2vid-widgets or choose another captioner (vid2vid models lists them).") from err
    revision = preset.revision if preset is not None and model_id == preset.model_id else None
    return cls(model_id, revision=revision, device=device, dtype=dtype)


def preset_settings(preset: Optional[GeneratorPreset], given: Mapping[str, Any]) -> GenerationSettings:
    """The settings a pipeline starts from: ``GenerationSettings()``, then the preset's defaults, then
    the settings the person gave (each given one wins; None counts as not given)."""
    given = {k: v for k, v in given.items() if v is not None or k in ("seed", "window")}
    unknown = set(given) - _SETTING_NAMES
    if unknown:
        raise TypeError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    return preset.settings(**given) if preset is not None else GenerationSettings(**given)


def size_text(num_bytes: int) -> str:
    return f"{num_bytes / GB:.1f} GB" if num_bytes >= 0.95 * GB else f"{num_bytes / 1e6:.0f} MB"


def table() -> str:
    """The catalogue as a plain-text table: generators, then captioners, with license and download size."""
    lines: List[str] = []

    def section(title: str, header: Tuple[str, ...], rows: List[Tuple[str, ...]]) -> None:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append(title)
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        lines.append("")

    generator_rows = []
    for p in GENERATORS:
        s = p.settings()
        default = " (default)" if p.name == DEFAULT_GENERATOR else ""
        generator_rows.append((
            p.name + default, p.backend, ", ".join(p.model_ids), p.license_text(), size_text(p.download_bytes),
            f"{s.num_frames}x{s.width}x{s.height}, {s.num_steps} steps, guidance {s.guidance_scale:g}, {s.scheduler}",
            "yes" if p.video_to_video else "no", p.summary,
        ))
    section("Generators (--model NAME)", ("name", "backend", "model ids", "license", "download", "defaults",
                                          "video-to-video", "note"), generator_rows)
    captioner_rows = [(p.name + (" (default)" if p.name == DEFAULT_CAPTIONER else ""), p.model_id,
                       p.license_text(), size_text(p.download_bytes), p.summary) for p in CAPTIONERS]
    section("Captioners (--captioner NAME)", ("name", "model id", "license", "download", "note"), captioner_rows)
    lines.append("A hub id (owner/name) or a local folder works too. Sizes: what a CUDA GPU downloads the first time.")
    return "\n".join(lines)


__all__ = ["GeneratorPreset", "CaptionerPreset", "GENERATORS", "CAPTIONERS", "DEFAULT_GENERATOR",
           "DEFAULT_CAPTIONER", "generator_preset", "captioner_preset", "resolve_generator", "make_generator",
           "make_captioner", "preset_settings", "default_preset_for", "folder_arguments", "table"]
