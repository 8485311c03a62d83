"""Live preview of a run: the model's current guess of the finished video, as a small picture strip.

At every denoising step the model predicts the noise; from it follows its estimate of the *clean*
latents (x0): what the video would be if the run stopped now. A full VAE decode of x0 every few
steps would cost as much as the final decode each time, so the preview maps latents to colours with
one fixed linear map per latent pixel (4 latent channels -> RGB, plus a bias): a few multiply-adds
on a few frames, far below 1 % of a step.

Where the map's numbers come from (``LatentRGBMap.source`` says which one a preview used):

* ``published``: for the Stable Diffusion 1.x VAE, which ModelScope text-to-video shares (4 latent
  channels, scaling factor 0.18215), the "latent2rgb" factors of ComfyUI's latent preview
  (comfyanonymous/ComfyUI, ``comfy/latent_formats.py``, class ``SD15``; ``latent_preview.py`` applies
  them to the sampler's scaled latents and reads the result as RGB in [-1, 1]). They were fitted by
  its authors on the real VAE; there is no bias for SD 1.x.
* ``fitted``: for any other VAE (the tiny random ones, a fine-tuned or new family), ``fit_latent_rgb``
  computes the map by least squares from the VAE itself: a fixed set of colour patches is encoded,
  the latents are decoded again, and the decoded colours (averaged over each latent pixel's 8x8
  block) are regressed on the latents. Fitting on what the *decoder* shows is what makes the preview
  follow the final frames, even for a random VAE that does not reproduce its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..progress import Preview

DEFAULT_PREVIEW_EVERY = 5  # steps between previews: 5 of the default 25 steps
PREVIEW_FRAMES = 4  # frames of the video shown side by side in a strip
PREVIEW_HEIGHT = 96  # pixels: a strip row is scaled up to about this height

# ComfyUI's SD15 latent_rgb_factors: rows are the 4 latent channels, columns R, G, B (see the module
# docstring for the source and the convention: scaled latents in, RGB in [-1, 1] out).
SD15_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
SD15_SCALING_FACTOR = 0.18215


@dataclass(frozen=True, eq=False)
class LatentRGBMap:
    """RGB in [-1, 1] = latents (scaled, as the sampler sees them) @ ``factors`` + ``bias``."""

    factors: np.ndarray  # (latent channels, 3)
    bias: np.ndarray  # (3,)
    source: str  # "published" or "fitted": how the numbers were obtained (module docstring)

    def to_rgb(self, latents: Any) -> np.ndarray:
        """Latents (..., C, h, w) (a torch tensor or an array) -> float RGB (..., h, w, 3) in [-1, 1]."""
        import torch

        x = torch.as_tensor(latents).float()
        factors = torch.as_tensor(self.factors, dtype=torch.float32, device=x.device)
        rgb = torch.einsum("...chw,ck->...hwk", x, factors) + torch.as_tensor(self.bias, device=x.device).float()
        return rgb.cpu().numpy()


def published_latent_rgb() -> LatentRGBMap:
    """The map for the Stable Diffusion 1.x VAE (ComfyUI's published factors; no bias)."""
    return LatentRGBMap(np.asarray(SD15_LATENT_RGB, dtype=np.float32), np.zeros(3, np.float32), "published")


def colour_patches(count: int = 12, size: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed set of test pictures (count, 3, size, size) in [-1, 1]: blocks of random colours and
    smooth gradients, so every hue, dark and light, fills whole latent pixels."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        if index % 3 == 2:  # a smooth gradient across the picture
            y, x = np.mgrid[0:size, 0:size] / (size - 1)
            start, end = rng.uniform(-1, 1, (2, 3, 1, 1))
            images.append(start * (1 - x) * (1 - y) + end * x * y + rng.uniform(-0.5, 0.5, (3, 1, 1)) * (x - y))
        else:  # blocks of 16x16 pixels, each one flat colour
            blocks = rng.uniform(-1, 1, (3, size // 16, size // 16))
            images.append(np.kron(blocks, np.ones((16, 16))))
    return np.clip(np.stack(images), -1, 1).astype(np.float32)


def fit_latent_rgb(
    encode: Callable[[Any], Any], decode: Callable[[Any], Any], *, count: int = 12, size: int = 64,
) -> LatentRGBMap:
    """Fit a latent->RGB map for a VAE by least squares (see the module docstring).

    ``encode``: pixels (n, 3, H, W) in [-1, 1] -> scaled latents (n, C, h, w) (the posterior mean times
    the scaling factor); ``decode``: scaled latents -> pixels (n, 3, H, W) in [-1, 1]. Both are torch
    callables; ``size`` must be a multiple of the VAE's downsampling factor.
    """
    import torch

    pixels = torch.from_numpy(colour_patches(count, size))
    latents = encode(pixels)
    decoded = decode(latents).float().clamp(-1, 1).cpu()
    latents = latents.float().cpu()
    factor = decoded.shape[-1] // latents.shape[-1]
    # The colour each latent pixel stands for: the mean of the decoded block it covers.
    target = torch.nn.functional.avg_pool2d(decoded, factor)
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double()
    y = target.permute(0, 2, 3, 1).reshape(-1, 3).double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution  # (C + 1, 3)
    return LatentRGBMap(solution[:-1].float().numpy(), solution[-1].float().numpy(), "fitted")


def x0_from_noise(sample: Any, model_output: Any, alpha_prod: Any, prediction_type: str = "epsilon") -> Any:
    """The clean-latents estimate from a noisy sample and the model's (guided) prediction at one timestep.

    epsilon: x0 = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t); v: x0 = sqrt(a_t) * x_t - sqrt(1 - a_t) * v;
    ``alpha_prod`` is the scheduler's ``alphas_cumprod`` at that timestep.
    """
    alpha = alpha_prod.to(device=sample.device, dtype=sample.dtype)
    if prediction_type == "v_prediction":
        return alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
    if prediction_type == "sample":
        return model_output
    return (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()


def preview_steps(total: int, every: int) -> Sequence[int]:
    """The steps (1-based) after which a preview is shown: every ``every``-th, and the last one."""
    if every <= 0 or total <= 0:
        return []
    return sorted(set(range(every, total + 1, every)) | {total})


def preview_strip(x0: Any, rgb_map: LatentRGBMap, frames: int = PREVIEW_FRAMES,
                  height: int = PREVIEW_HEIGHT) -> np.ndarray:
    """x0 latents (N, C, T, h, w) -> one uint8 picture (rows: the N videos; columns: a few frames).

    Frames are spread over the video; each latent pixel becomes a block of pixels (nearest
    neighbour: a preview that does not pretend to be sharper than it is).
    """
    num_frames = int(x0.shape[2])
    picked = sorted(set(np.linspace(0, num_frames - 1, min(frames, num_frames)).round().astype(int).tolist()))
    rgb = rgb_map.to_rgb(x0[:, :, picked].transpose(1, 2))  # (N, F, h, w, 3)
    images = ((np.clip(rgb, -1, 1) + 1) * 127.5).round().astype(np.uint8)
    rows = [np.concatenate(list(video), axis=1) for video in images]  # frames side by side
    strip = np.concatenate(rows, axis=0)
    scale = max(1, round(height / images.shape[2]))
    return np.repeat(np.repeat(strip, scale, axis=0), scale, axis=1)


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 RGB picture as PNG bytes (for ipywidgets.Image and the run folder)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


class PreviewMaker:
    """Turns the sampler's x0 estimate into ``Preview`` reports at the chosen steps of one run."""

    def __init__(self, total: int, every: int, rgb_map: LatentRGBMap, on_preview: Callable[[Preview], None]) -> None:
        self.total = total
        self.steps = frozenset(preview_steps(total, every))
        self.rgb_map = rgb_map
        self.on_preview = on_preview

    def after_step(self, step: int, estimate_x0: Callable[[], Any]) -> Optional[Preview]:
        if step not in self.steps:
            return None
        x0 = estimate_x0()
        preview = Preview(step=step, total=self.total, image=preview_strip(x0, self.rgb_map),
                          latent_shape=tuple(int(n) for n in x0.shape))
        self.on_preview(preview)
        return preview


__all__ = ["DEFAULT_PREVIEW_EVERY", "LatentRGBMap", "published_latent_rgb", "fit_latent_rgb", "colour_patches",
           "x0_from_noise", "preview_steps", "preview_strip", "png_bytes", "PreviewMaker", "SD15_LATENT_RGB"]
