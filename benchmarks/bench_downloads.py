"""First-run cost on Colab, on paper: bytes each backend downloads before its first video.

No weights can be downloaded here, so the sizes come from the published architectures: each model
is built on the meta device (no memory, no weights) from its published config, its parameters are
counted, and bytes = parameters x bytes per value of the file that the loader fetches
(fp16 variant for the diffusers backend on CUDA, fp32 for BLIP and the ModelScope original).
The ModelScope original's files are fp32 pickles whose published sizes are listed beside.

    python benchmarks/bench_downloads.py
"""

from __future__ import annotations

import platform

GB = 1e9
# Published file sizes of damo/text-to-video-synthesis (ModelScope / HF mirror), for comparison.
MODELSCOPE_FILES_GB = {"text2video_pytorch_model.pth": 5.65, "open_clip_pytorch_model.bin": 3.94,
                       "VQGAN_autoencoder.pth": 5.26}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def published_architectures() -> dict:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import BlipConfig, BlipForConditionalGeneration, CLIPTextConfig, CLIPTextModel

    with init_empty_weights():  # meta tensors: counts parameters without allocating them
        unet = UNet3DConditionModel(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                    cross_attention_dim=1024, attention_head_dim=64)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4)
        text = CLIPTextModel(CLIPTextConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                            num_attention_heads=16, vocab_size=49408, max_position_embeddings=77,
                                            hidden_act="gelu", projection_dim=512))
        blip_base = BlipForConditionalGeneration(BlipConfig())
        blip_large = BlipForConditionalGeneration(BlipConfig(vision_config={
            "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}))
    return {"unet": count(unet), "vae": count(vae), "text_encoder": count(text),
            "blip_base": count(blip_base), "blip_large": count(blip_large)}


def main() -> None:
    params = published_architectures()
    t2v_fp16 = (params["unet"] + params["vae"] + params["text_encoder"]) * 2
    t2v_fp32 = t2v_fp16 * 2
    rows = [
        ("captioner: Salesforce/blip-image-captioning-base (fp32 safetensors)", params["blip_base"] * 4),
        ("captioner: Salesforce/blip-image-captioning-large (fp32 safetensors)", params["blip_large"] * 4),
        ("diffusers: ali-vilab/text-to-video-ms-1.7b, fp16 variant (CUDA)", t2v_fp16),
        ("diffusers: ali-vilab/text-to-video-ms-1.7b, fp32 (CPU)", t2v_fp32),
        ("modelscope: damo/text-to-video-synthesis (published fp32 pickles)", sum(MODELSCOPE_FILES_GB.values()) * GB),
    ]
    print(f"machine: {platform.machine()} {platform.system()}, Python {platform.python_version()}")
    print("parameters (millions): " + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in params.items()))
    width = max(len(r[0]) for r in rows)
    for name, size in rows:
        print(f"{name:<{width}}  {size / GB:6.2f} GB")
    default = rows[0][1] + rows[2][1]
    original = rows[0][1] + rows[4][1]
    print(f"\nfirst run on a Colab T4, default backend: {default / GB:.2f} GB; original backend: "
          f"{original / GB:.2f} GB ({original / default:.1f}x more)")


if __name__ == "__main__":
    main()
