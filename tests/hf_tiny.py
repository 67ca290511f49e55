"""Tiny random Hugging Face teachers built from configs (no download), shared by the teacher tests."""

from __future__ import annotations

from pathlib import Path


def save_tiny_segformer(tf, folder: Path, labels: dict[int, str]) -> Path:
    """A 2-block SegFormer with ``labels`` and its 64x64 image processor, saved to ``folder``."""
    cfg = tf.SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
                             decoder_hidden_size=16, num_labels=len(labels), id2label=labels,
                             label2id={v: k for k, v in labels.items()})
    tf.SegformerForSemanticSegmentation(cfg).save_pretrained(folder)
    tf.SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def save_tiny_depth_anything(tf, folder: Path) -> Path:
    """A 2-layer DINOv2 Depth Anything and its 56x56 DPT image processor, saved to ``folder``."""
    backbone = tf.Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                               patch_size=14, image_size=56, out_features=["stage1", "stage2"],
                               reshape_hidden_states=False)
    cfg = tf.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16],
                                 fusion_hidden_size=16, head_hidden_size=8, reassemble_factors=[2, 1])
    tf.DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    tf.DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True,
                         ensure_multiple_of=14).save_pretrained(folder)
    return folder
