"""Class-conditional MONAI `DiffusionModelUNet` (2D/3D) with a null label for classifier-free
guidance, and access to the bottleneck (middle-block) features for CCUA.

Conditioning (docs/methods.md):
- single-label: MONAI's own class embedding with `num_class_embeds = K + 1`; index K is the null label.
- multi-label, `time-embedding`: the multi-hot vector y goes through a learned linear layer to
  the time-embedding width and is added to the time embedding; "unconditional" rows use a learned null
  embedding instead.
- multi-label, `adaptive-norm` (default): as `time-embedding`, and in addition every residual block's second
  group norm is modulated by the combined (time + label) embedding, h ← GN(h)·(1 + s) + b with
  (s, b) = Linear(SiLU(emb)) per block, zero-initialised (ADM's scale/shift norm): the label then acts
  multiplicatively in every block instead of only as an added bias.
- multi-label, `cross-attention`: MONAI's cross-attention context (`with_conditioning=True`); the
  context holds one token per class (a learned "present" or "absent" token for that class), and
  "unconditional" rows use learned null tokens.

Labels passed to `forward` are the dataset's labels (int64 (B,) indices or float (B, K) multi-hot) plus
a boolean `uncond` (B,) mask that selects the null condition per row.

Regularizers may add projection heads on the bottleneck (CORAL's Linear(C_mid → 128)): they live in
`heads` (an nn.ModuleDict), so the optimizer, the EMA copy and checkpoints hold them like any other
weight. `forward(..., project=True)` applies every head to the spatially averaged middle-block output.
`load_state_dict` matches heads by name: a checkpoint without a head (written before it existed, or by a
run without that regularizer) loads with the head left at its initial weights, and a checkpoint's extra
heads are ignored, so sampling never depends on them.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock, get_timestep_embedding
from torch import nn
from torch.nn import functional as F

from medlt.data.labels import LabelSpace
from medlt.recipe.diffusion import ModelConfig


class _TimeEmbeddingPlusLabel(nn.Module):
    """Wraps the UNet's `time_embed` so that a per-call label embedding is added to its output.

    This is how a multi-hot label reaches MONAI's UNet without re-implementing its forward: the
    wrapper replaces `unet.time_embed`, and `ConditionalUNet.forward` sets `extra` for one call.
    """

    def __init__(self, time_embed: nn.Module, slot: _EmbeddingSlot | None = None):
        super().__init__()
        self.inner = time_embed
        self.extra: torch.Tensor | None = None
        self.slot = slot

    def forward(self, t_emb: torch.Tensor) -> torch.Tensor:
        out = self.inner(t_emb)
        if self.extra is not None:
            out = out + self.extra.to(out.dtype)
        if self.slot is not None:
            self.slot.value = out
        return out


class _EmbeddingSlot:
    """The combined embedding of the current forward, shared by the adaptive norms (not a module, so
    it owns no weights and is not saved)."""

    value: torch.Tensor | None = None


class _AdaptiveGroupNorm(nn.Module):
    """GN(h)·(1 + s) + b with (s, b) = Linear(SiLU(emb)) of the slot's embedding; zero-initialised so
    that a fresh model equals the `time-embedding` design."""

    def __init__(self, norm: nn.GroupNorm, emb_dim: int, slot: _EmbeddingSlot):
        super().__init__()
        self.norm = norm
        self.scale_shift = nn.Linear(emb_dim, 2 * norm.num_channels)
        nn.init.zeros_(self.scale_shift.weight)
        nn.init.zeros_(self.scale_shift.bias)
        self.slot = slot

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        emb = self.slot.value
        if emb is None:
            raise RuntimeError("adaptive norm called outside ConditionalUNet.forward")
        s, b = self.scale_shift(F.silu(emb)).to(h.dtype).chunk(2, dim=1)
        shape = (*s.shape, *([1] * (h.dim() - 2)))
        return self.norm(h) * (1 + s.reshape(shape)) + b.reshape(shape)


class ConditionalUNet(nn.Module):
    """eps(x_t, t, y) with a per-row null condition; optional bottleneck features."""

    def __init__(self, cfg: ModelConfig, label_space: LabelSpace, heads: dict[str, nn.Module] | None = None):
        super().__init__()
        self.num_classes = label_space.num_classes
        self.multi_label = label_space.multi_label
        self.spatial_dims = cfg.spatial_dims
        self.conditioning = "class-embedding" if not self.multi_label else cfg.multi_label_conditioning
        cross = self.conditioning == "cross-attention"
        time_dim = cfg.channels[0] * 4
        self.unet = DiffusionModelUNet(
            spatial_dims=cfg.spatial_dims,
            in_channels=cfg.in_channels,
            out_channels=cfg.in_channels,
            channels=tuple(cfg.channels),
            attention_levels=tuple(cfg.attention_levels),
            num_res_blocks=cfg.num_res_blocks,
            num_head_channels=cfg.num_head_channels,
            norm_num_groups=cfg.norm_num_groups,
            num_class_embeds=None if self.multi_label else self.num_classes + 1,
            with_conditioning=cross,
            cross_attention_dim=cfg.cross_attention_dim if cross else None,
        )
        self._slot = _EmbeddingSlot() if self.conditioning == "adaptive-norm" else None
        if self.conditioning in ("time-embedding", "adaptive-norm"):
            self.label_proj = nn.Linear(self.num_classes, time_dim)
            self.null_embedding = nn.Parameter(torch.zeros(time_dim))
            self.unet.time_embed = _TimeEmbeddingPlusLabel(self.unet.time_embed, self._slot)
        if self._slot is not None:
            for block in self.unet.modules():
                if isinstance(block, DiffusionUNetResnetBlock):
                    block.norm2 = _AdaptiveGroupNorm(block.norm2, time_dim, self._slot)
        elif cross:
            d = cfg.cross_attention_dim
            self.present_tokens = nn.Parameter(torch.randn(self.num_classes, d) * 0.02)
            self.absent_tokens = nn.Parameter(torch.randn(self.num_classes, d) * 0.02)
            self.null_tokens = nn.Parameter(torch.randn(self.num_classes, d) * 0.02)
        self.heads = nn.ModuleDict(heads or {})
        self._features: torch.Tensor | None = None
        self._capture = False
        self.unet.middle_block.register_forward_hook(self._keep_bottleneck)

    def _keep_bottleneck(self, module, args, output):
        if self._capture:
            self._features = output

    @property
    def null_label(self) -> int:
        return self.num_classes

    @property
    def label_added_to_time_embedding(self) -> bool:
        return self.conditioning in ("time-embedding", "adaptive-norm")

    @torch.no_grad()
    def label_embedding_ratio(self, labels_a: torch.Tensor, labels_b: torch.Tensor,
                              timesteps: torch.Tensor) -> torch.Tensor | None:
        """Per row, ‖e(labels_a) − e(labels_b)‖ / ‖time embedding(t)‖: how large a label change is
        against the time embedding it is added to (multi-label designs that add the label to the time
        embedding; None otherwise)."""
        if not self.label_added_to_time_embedding:
            return None
        w = self.label_proj.weight
        d = self.label_proj(labels_a.to(w.dtype)) - self.label_proj(labels_b.to(w.dtype))
        t_emb = get_timestep_embedding(timesteps, self.unet.block_out_channels[0]).to(w.dtype)
        temb = self.unet.time_embed.inner(t_emb)
        return d.norm(dim=1) / temb.norm(dim=1).clamp_min(1e-12)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor,
                uncond: torch.Tensor | None = None, *, return_features: bool = False, project: bool = False):
        """x (B, C, *spatial), timesteps (B,) int, labels (B,) int64 or (B, K) float multi-hot,
        uncond (B,) bool: rows that get the null condition. Returns eps (B, C, *spatial), and the
        middle-block output (B, C', *spatial') too when `return_features`; with `project`, a third
        item: head name -> head(spatial mean of the middle-block output) (B, D)."""
        b = x.shape[0]
        if uncond is None:
            uncond = torch.zeros(b, dtype=torch.bool, device=x.device)
        kwargs = {}
        if self.conditioning == "class-embedding":
            kwargs["class_labels"] = torch.where(uncond, torch.full_like(labels, self.null_label), labels)
        elif self.label_added_to_time_embedding:
            y = self.label_proj(labels.to(self.label_proj.weight.dtype))
            # torch.where keeps the null embedding in the graph even when no row is dropped (DDP-safe)
            self.unet.time_embed.extra = torch.where(uncond[:, None], self.null_embedding[None], y)
        else:
            y = labels.to(self.present_tokens.dtype)[:, :, None]
            tokens = y * self.present_tokens[None] + (1 - y) * self.absent_tokens[None]
            kwargs["context"] = torch.where(uncond[:, None, None], self.null_tokens[None], tokens)
        self._capture = return_features or project
        try:
            eps = self.unet(x, timesteps, **kwargs)
            feats = self._features
        finally:
            self._capture = False
            self._features = None
            if self.label_added_to_time_embedding:
                self.unet.time_embed.extra = None
            if self._slot is not None:
                self._slot.value = None
        if project:
            pooled = feats.flatten(2).mean(dim=2)
            return eps, feats, {k: h(pooled) for k, h in self.heads.items()}
        return (eps, feats) if return_features else eps

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict for the network; heads by name (missing ones keep their weights, extra ones are
        ignored: see the module docstring)."""
        own = {k.split(".")[1] for k in self.state_dict() if k.startswith("heads.")}
        theirs = {k.split(".")[1] for k in state_dict if k.startswith("heads.")}
        keep = {k: v for k, v in state_dict.items()
                if not k.startswith("heads.") or k.split(".")[1] in own}
        for name in own - theirs:
            keep.update({f"heads.{name}.{k}": v for k, v in self.heads[name].state_dict().items()})
        return super().load_state_dict(keep, strict=strict, assign=assign)


def build_model(cfg: ModelConfig, label_space: LabelSpace,
                heads: dict[str, nn.Module] | None = None) -> ConditionalUNet:
    """The conditional UNet; `heads` are the regularizers' bottleneck heads (medlt.diffusion.regularizers
    .model_heads), named."""
    return ConditionalUNet(cfg, label_space, heads)


@contextmanager
def eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)
