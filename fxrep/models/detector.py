"""A small RT-DETR-style detector: the reference model for checking a rewrite *before* a discrete op.

RT-DETR (Zhao et al., CVPR 2024, lyuwenyu/RT-DETR ``rtdetr_pytorch/src/zoo/rtdetr``) picks its
decoder queries with a top-k over the encoder's scores: ``topk(enc_score_head(memory).max(-1),
num_queries)``, then gathers those memory tokens and reference boxes and refines them in the
decoder. Top-k is discrete: two candidates whose scores differ by less than float32 rounding swap
places (or one leaves the top-k), and the decoder then outputs a different query in that row. So a
conv + BatchNorm fusion that is exact up to rounding (fxrep's, or the hand conversion
`tiny_detector_convert`) changes the detector's outputs by far more than any float32 tolerance, which an end-to-end-only
check cannot tell from a wrong rewrite. `fxrep.verify` checks each rewritten region on its own and
reports the flip as a warning naming the top-k.

`TinyDetector` keeps RT-DETR's structure at a size a CPU test optimizes in a few seconds:

- backbone: conv-BN-ReLU stages (stride 8 overall) and one RepVGG block, so fxrep has BatchNorms
  to fold and branches to merge;
- encoder: one post-norm transformer layer (self-attention, FFN) over the H/8 x W/8 tokens;
- query selection: ``enc_score_head`` (class logits per token) and ``enc_bbox_head`` (a reference
  box per token); ``topk`` of the best class score picks ``num_queries`` tokens, whose features and
  reference boxes are gathered (indexing with computed indices);
- decoder: one layer of self-attention among the queries, cross-attention to the memory and an FFN;
  heads give class logits and boxes (``sigmoid(delta + inverse_sigmoid(reference))``).

Its forward returns ``{"pred_logits": (N, Q, classes), "pred_boxes": (N, Q, 4)}`` like RT-DETR,
the boxes refined from per-token anchors (a token's cell on the feature grid), so two candidates
that swap places in the top-k give different boxes. On `street_scene` images (a flat background
with faint noise: most candidates are background tokens whose scores are near-ties) a
rounding-level change before the top-k reorders the picks on every seed tried. Use
`fxrep.models.randomize_` for non-trivial BatchNorm statistics.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .layers import conv_bn
from .repvgg import RepVGGBlock, repvgg_model_convert

__all__ = ["TinyDetector", "street_scene", "tiny_detector", "tiny_detector_convert"]


class _Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (RT-DETR's decoder layers' form)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        batch, length, dim = query.shape
        head_dim = dim // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(batch, x.shape[1], self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(query)), split(self.k_proj(memory)), split(self.v_proj(memory))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(batch, length, dim))


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, out: int | None = None) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out or dim))


class TinyDetector(nn.Module):
    """Backbone, encoder, top-k query selection, decoder, heads (see the module docstring)."""

    def __init__(self, num_classes: int = 80, num_queries: int = 300, width: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.backbone = nn.Sequential(
            conv_bn(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            conv_bn(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            RepVGGBlock(32, 32),
            conv_bn(32, width, 3, stride=2, padding=1), nn.ReLU(),
            conv_bn(width, width, 3, stride=1, padding=1), nn.ReLU(),
        )
        self.encoder_attention, self.encoder_norm1 = _Attention(width, heads), nn.LayerNorm(width)
        self.encoder_ffn, self.encoder_norm2 = _FeedForward(width, 2 * width), nn.LayerNorm(width)
        self.enc_score_head = nn.Linear(width, num_classes)
        self.enc_bbox_head = nn.Linear(width, 4)
        self.query_pos_head = _FeedForward(4, 2 * width, width)
        self.decoder_self_attention, self.decoder_norm1 = _Attention(width, heads), nn.LayerNorm(width)
        self.decoder_cross_attention, self.decoder_norm2 = _Attention(width, heads), nn.LayerNorm(width)
        self.decoder_ffn, self.decoder_norm3 = _FeedForward(width, 2 * width), nn.LayerNorm(width)
        self.score_head = nn.Linear(width, num_classes)
        self.bbox_head = nn.Linear(width, 4)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        memory = features.flatten(2).transpose(1, 2)  # (N, H*W, width)
        memory = self.encoder_norm1(memory + self.encoder_attention(memory, memory))
        memory = self.encoder_norm2(memory + self.encoder_ffn(memory))

        scores = self.enc_score_head(memory).amax(dim=-1)  # the best class score of every token
        picked = torch.topk(scores, self.num_queries, dim=1).indices  # (N, Q)
        queries = torch.gather(memory, 1, picked.unsqueeze(-1).expand(-1, -1, memory.shape[-1]))
        proposals = self.enc_bbox_head(memory) + _anchors(features.shape[-2], features.shape[-1], memory)
        reference = torch.gather(proposals, 1, picked.unsqueeze(-1).expand(-1, -1, 4)).sigmoid()

        queries = queries + self.query_pos_head(reference)
        queries = self.decoder_norm1(queries + self.decoder_self_attention(queries, queries))
        queries = self.decoder_norm2(queries + self.decoder_cross_attention(queries, memory))
        queries = self.decoder_norm3(queries + self.decoder_ffn(queries))
        boxes = (self.bbox_head(queries) + torch.logit(reference, eps=1e-5)).sigmoid()
        return {"pred_logits": self.score_head(queries), "pred_boxes": boxes}


def _anchors(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """RT-DETR's anchors in logit space: one box per token, centred on its cell, 0.05 wide (1, H*W, 4)."""
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) + 0.5) / height
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    size = torch.full_like(grid_x, 0.05)
    boxes = torch.stack([grid_x, grid_y, size, size], dim=-1).reshape(1, height * width, 4)
    return torch.logit(boxes)


def tiny_detector(num_classes: int = 80, num_queries: int = 300) -> TinyDetector:
    """`TinyDetector` with RT-DETR's 300 queries; run it on (N, 3, 256, 256) images (1024 candidates)."""
    return TinyDetector(num_classes=num_classes, num_queries=num_queries)


def tiny_detector_convert(model: TinyDetector) -> TinyDetector:
    """The hand-written deploy conversion, as a user would write it: a deep copy with the RepVGG block in
    its deploy form (`repvgg_model_convert`) and every conv + BatchNorm pair fused by PyTorch's own
    `torch.nn.utils.fusion.fuse_conv_bn_eval`. Exact up to rounding, like fxrep's rewrite."""
    converted = repvgg_model_convert(model).eval()
    for module in converted.modules():
        if isinstance(module, nn.Sequential) and isinstance(getattr(module, "bn", None), nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return converted


def street_scene(batch: int = 1, size: int = 256, *, objects: int = 6, noise: float = 1e-5,
                 seed: int = 0) -> torch.Tensor:
    """A synthetic image batch (N, 3, size, size) like a detector's input: a flat gray background with
    sensor noise of std ``noise`` and ``objects`` coloured rectangles.

    On such images most of the candidates a detector ranks are background tokens whose scores differ
    only by the noise, so the order of the top-k (and the decoder's output rows) is decided by tiny
    differences, as on real photographs with sky, road or walls.
    """
    generator = torch.Generator().manual_seed(seed)
    images = 0.5 + noise * torch.randn(batch, 3, size, size, generator=generator)
    for index in range(batch):
        for _ in range(objects):
            low = torch.randint(0, size * 3 // 4, (2,), generator=generator)
            extent = torch.randint(size // 16, size // 4, (2,), generator=generator)
            colour = torch.rand(3, 1, 1, generator=generator) * 2 - 1
            top, left = int(low[0]), int(low[1])
            images[index, :, top:top + int(extent[0]), left:left + int(extent[1])] += colour
    return images
