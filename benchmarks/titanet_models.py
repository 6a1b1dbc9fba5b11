"""Randomly initialised TitaNet models with NeMo's real architecture, for tests and benchmarks.

Real TitaNet weights cannot be downloaded here; speed, memory and the loading path depend on
the architecture, not on the weights, so these stand in for them. `large` follows NeMo's
examples/speaker_tasks/recognition/conf/titanet-large.yaml (about 23.5 M parameters,
192-dim embeddings); `tiny` keeps its structure at a fraction of the size.
"""

from __future__ import annotations

from pathlib import Path

SIZES = {
    "tiny": dict(filters=64, repeat=1, kernels=(7,), enc_out=128, emb=32, classes=10),
    "large": dict(filters=1024, repeat=3, kernels=(7, 11, 15), enc_out=3072, emb=192, classes=7205),
}


def titanet_config(size: str = "tiny"):
    from omegaconf import OmegaConf

    s = SIZES[size]

    def block(filters: int, kernel: int, residual: bool, repeat: int = 1, dropout: float = 0.0) -> dict:
        return dict(filters=filters, repeat=repeat, kernel=[kernel], stride=[1], dilation=[1], dropout=dropout,
                    residual=residual, separable=True, se=True, se_context_size=-1)

    jasper = [block(s["filters"], 3, False)]
    jasper += [block(s["filters"], k, True, s["repeat"], 0.1) for k in s["kernels"]]
    jasper += [block(s["enc_out"], 1, False)]
    return OmegaConf.create({
        "sample_rate": 16000,
        # get_embedding() and infer_file() read train_ds.sample_rate; defer_setup builds no loader.
        "train_ds": {"sample_rate": 16000, "labels": None, "manifest_filepath": None, "defer_setup": True},
        "validation_ds": None,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "normalize": "per_feature", "window_size": 0.025, "sample_rate": 16000, "window_stride": 0.01,
            "window": "hann", "features": 80, "n_fft": 512, "frame_splicing": 1, "dither": 1e-5,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 80, "activation": "relu",
            "conv_mask": True, "jasper": jasper,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.SpeakerDecoder", "feat_in": s["enc_out"],
            "num_classes": s["classes"], "pool_mode": "attention", "emb_sizes": s["emb"],
        },
        "loss": {"_target_": "nemo.collections.asr.losses.angularloss.AngularSoftmaxLoss", "scale": 30, "margin": 0.2},
    })


def build_titanet(size: str, path: Path, seed: int = 0):
    """Build a random TitaNet of `size`, save it to `path` (.nemo) and return the model."""
    import torch
    from nemo.collections.asr.models import EncDecSpeakerLabelModel

    torch.manual_seed(seed)
    model = EncDecSpeakerLabelModel(cfg=titanet_config(size), trainer=None).eval()
    model.save_to(str(path))
    return model
