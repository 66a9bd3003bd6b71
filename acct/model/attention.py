"""A faster, numerically equivalent forward for DeBERTa-v2/v3 disentangled self-attention.

Hugging Face's `DisentangledSelfAttention` computes the content-to-position (c2p) and
position-to-content (p2c) terms against all 2*S relative-position embeddings (S = position
buckets, 256 for DeBERTa-v3-base) and first copies the projected position embeddings once per
sequence in the batch (`.repeat`). A batch of sequences of length L only ever looks up the
buckets of distances -(L-1)..L-1, a contiguous slice of the table, so this forward:

- projects only that slice (about 2L rows instead of 2S);
- multiplies every sequence against the one shared projection (a batched matmul over heads,
  no per-sequence copy);
- gathers from the narrower score tensor.

The weights, the parameter names and the result are Hugging Face's; only the work differs.
`install` replaces the forward of each attention module in place and checks the first one
against the original on a random input before keeping it, so an encoder whose attention code
differs from what this module expects keeps its own forward.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from torch import nn


def _attention_modules(encoder: nn.Module) -> list[nn.Module]:
    return [m for m in encoder.modules() if type(m).__name__ == "DisentangledSelfAttention"]


def is_deberta(encoder: nn.Module) -> bool:
    """Whether the encoder has DeBERTa-v2/v3 disentangled attention modules."""
    return bool(_attention_modules(encoder))


@lru_cache(maxsize=1024)
def _reach(length: int, bucket_size: int, max_position: int) -> int:
    """An upper bound on |bucket| over the distances of a length-L sequence.

    Buckets are odd-symmetric and grow with the distance, so the largest is that of L-1. It is
    computed by the library's own function, on the CPU; the +1 covers a last-ulp difference of
    `log` on the device that could move a distance on a bucket edge to the next bucket.
    """
    if bucket_size > 0 and max_position > 0:
        from transformers.models.deberta_v2.modeling_deberta_v2 import (
            make_log_bucket_position,
        )

        farthest = make_log_bucket_position(torch.tensor([length - 1]), bucket_size, max_position)
        return int(farthest.abs().max()) + 1
    return length - 1


@lru_cache(maxsize=8)
def _scale_in(scale: float, dtype: torch.dtype) -> float:
    """`scale` rounded to `dtype` (a Python number: dividing by it creates no host tensor)."""
    return float(torch.tensor(scale, dtype=torch.float32).to(dtype))


_RELATIVE_POSITIONS: dict[tuple[int, int, int, str], torch.Tensor] = {}


def relative_positions(length: int, bucket_size: int, max_position: int, device: torch.device) -> torch.Tensor:
    """[1, L, L] bucketed relative positions of a length-L sequence, built once per (length, device).

    The library builds them on every encoder forward from Python numbers, a host-to-device copy
    (and so a wait for the device) per forward on a GPU. Built outside inference mode, so a
    training step may use what an evaluation cached.
    """
    if torch.compiler.is_compiling():  # traced into the graph: a cache lookup would break it at every new length
        return _build_relative_positions(length, bucket_size, max_position, device)
    key = (length, bucket_size, max_position, str(device))
    cached = _RELATIVE_POSITIONS.get(key)
    if cached is None:
        with torch.inference_mode(False), torch.no_grad():
            cached = _build_relative_positions(length, bucket_size, max_position, device)
        if len(_RELATIVE_POSITIONS) > 4096:
            _RELATIVE_POSITIONS.clear()
        _RELATIVE_POSITIONS[key] = cached
    return cached


def _build_relative_positions(length: int, bucket_size: int, max_position: int, device: torch.device) -> torch.Tensor:
    from transformers.models.deberta_v2.modeling_deberta_v2 import (
        build_relative_position,
    )

    probe = torch.empty(length, 0, device=device)
    return build_relative_position(probe, probe, bucket_size=bucket_size, max_position=max_position)


def _cached_rel_pos(self, hidden_states, query_states=None, relative_pos=None):
    """DebertaV2Encoder.get_rel_pos through the cache (self-attention without given positions)."""
    if self.relative_attention and relative_pos is None and query_states is None:
        return relative_positions(hidden_states.shape[-2], self.position_buckets, self.max_relative_positions,
                                  hidden_states.device)
    return self._acct_original_get_rel_pos(hidden_states, query_states, relative_pos)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [H, B, L, D]"""
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).permute(2, 0, 1, 3)


def fast_forward(
    self,
    hidden_states,
    attention_mask,
    output_attentions=False,
    query_states=None,
    relative_pos=None,
    rel_embeddings=None,
):
    """DisentangledSelfAttention.forward: the faster path for self-attention without attention weights."""
    length = hidden_states.shape[1]
    if (
        output_attentions
        or query_states is not None
        or not self.relative_attention
        or (relative_pos is not None and relative_pos.numel() != length * length)  # per-sequence positions
    ):
        return self._acct_original_forward(
            hidden_states, attention_mask, output_attentions, query_states, relative_pos, rel_embeddings
        )
    return self._acct_result(_attend(self, hidden_states, attention_mask, relative_pos, rel_embeddings))


def _attend(self, hidden_states, attention_mask, relative_pos, rel_embeddings) -> torch.Tensor:
    """The context layer [B, L, H*D] of one DisentangledSelfAttention module (queries = keys)."""
    heads = self.num_attention_heads
    batch, length, _ = hidden_states.shape
    query = _split_heads(self.query_proj(hidden_states), heads)
    key = _split_heads(self.key_proj(hidden_states), heads)
    value = _split_heads(self.value_proj(hidden_states), heads)
    head_dim = query.shape[-1]
    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    scale = math.sqrt(head_dim * scale_factor)

    # Heads lead ([H, B, L, D]) so the position terms are one matmul per head against the
    # shared position projection: q is [H, B*L, D].
    q = query.reshape(heads, batch * length, head_dim)
    # The key is scaled before the product, as the library does, so that fp16 q.k stays in range;
    # the scale is rounded to the compute dtype as the library's is.
    compiling = torch.compiler.is_compiling()
    # Under torch.compile the scale is a constant of the graph, and the position slice spans the whole
    # table: the host-side helpers would break the graph, and the bound of the slice depends on L.
    scale = torch.tensor(scale, dtype=torch.float32).to(query.dtype) if compiling else _scale_in(scale, query.dtype)
    scores = torch.matmul(query, key.transpose(-1, -2) / scale)

    span = self.pos_ebd_size
    if relative_pos is None:
        relative_pos = relative_positions(length, self.position_buckets, self.max_relative_positions, hidden_states.device)
    relative_pos = relative_pos.to(device=hidden_states.device, dtype=torch.long).reshape(length, length)
    reach = span if compiling else min(_reach(length, self.position_buckets, self.max_relative_positions), span)
    lo, hi = max(span - reach, 0), min(span + reach, 2 * span - 1)
    rel = self.pos_dropout(rel_embeddings)[lo : hi + 1].unsqueeze(0)
    width = hi - lo + 1
    if "c2p" in self.pos_att_type:
        pos_key = self.key_proj(rel) if self.share_att_key else self.pos_key_proj(rel)
        pos_key = pos_key.view(width, heads, head_dim).permute(1, 2, 0)  # [H, D, W]
        c2p = torch.bmm(q, pos_key).view(heads, batch, length, width)
        index = (relative_pos + span).clamp_(0, 2 * span - 1).sub_(lo).clamp_(0, width - 1)
        scores = scores + torch.gather(c2p, -1, index.expand(heads, batch, length, length)) / scale
    if "p2c" in self.pos_att_type:
        pos_query = self.query_proj(rel) if self.share_att_key else self.pos_query_proj(rel)
        pos_query = pos_query.view(width, heads, head_dim).permute(1, 2, 0)  # [H, D, W]
        k = key.reshape(heads, batch * length, head_dim)
        p2c = torch.bmm(k, pos_query).view(heads, batch, length, width)
        index = (span - relative_pos).clamp_(0, 2 * span - 1).sub_(lo).clamp_(0, width - 1)
        scores = scores + torch.gather(p2c, -1, index.expand(heads, batch, length, length)).transpose(-1, -2) / scale

    # attention_mask: [B, 1, L, L] -> [1, B, L, L], broadcast over heads.
    mask = attention_mask.bool().reshape(batch, length, length).unsqueeze(0)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = self.dropout(torch.softmax(scores, dim=-1))
    context = torch.matmul(probs, value)  # [H, B, L, D]
    context = context.permute(1, 2, 0, 3).reshape(batch, length, heads * head_dim)
    return context


def _as_pair(context: torch.Tensor) -> tuple[torch.Tensor, None]:
    return context, None


def _as_tensor(context: torch.Tensor) -> torch.Tensor:
    return context


def install(encoder: nn.Module) -> bool:
    """Give every DeBERTa-v2 attention module of `encoder` the faster forward; True when installed."""
    modules = _attention_modules(encoder)
    if not modules:
        return False
    # Installing twice must wrap the library's forward, not our own.
    originals = [getattr(m, "_acct_original_forward", m.forward) for m in modules]
    result = _check(modules[0], originals[0])
    if result is None:
        return False
    for module, original in zip(modules, originals):
        module._acct_original_forward = original
        module._acct_result = result
        module.forward = types.MethodType(fast_forward, module)
    for module in encoder.modules():
        if hasattr(module, "get_rel_pos") and hasattr(module, "position_buckets") and hasattr(module, "max_relative_positions"):
            module._acct_original_get_rel_pos = getattr(module, "_acct_original_get_rel_pos", module.get_rel_pos)
            module.get_rel_pos = types.MethodType(_cached_rel_pos, module)
    return True


def _check(module: nn.Module, original) -> Callable[[torch.Tensor], Any] | None:
    """Compare both forwards on one random padded input (eval mode).

    Returns how to package the context layer as the original does (a (context, None) pair in
    current transformers, the bare tensor in older ones), or None when they disagree.
    """
    needed = ("query_proj", "key_proj", "value_proj", "pos_att_type", "pos_ebd_size", "relative_attention",
              "position_buckets", "max_relative_positions", "share_att_key", "num_attention_heads", "pos_dropout",
              "dropout")
    if not all(hasattr(module, name) for name in needed) or not module.relative_attention:
        return None
    from transformers.models.deberta_v2.modeling_deberta_v2 import (
        build_relative_position,
    )

    param = module.query_proj.weight
    hidden = module.query_proj.in_features
    generator = torch.Generator().manual_seed(0)
    # Long enough to reach the log-scaled buckets, where the slice bounds matter.
    length = 7 if module.position_buckets <= 0 else module.position_buckets // 2 + 9
    x = torch.randn(2, length, hidden, generator=generator).to(param)
    mask2d = torch.ones(2, length, dtype=torch.long, device=param.device)
    mask2d[1, 4:] = 0
    mask = mask2d[:, None, None, :] * mask2d[:, None, :, None]
    rel = torch.randn(2 * module.pos_ebd_size, hidden, generator=generator).to(param)
    relative_pos = build_relative_position(
        x, x, bucket_size=module.position_buckets, max_position=module.max_relative_positions
    )
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            expected = original(x, mask, False, None, relative_pos, rel)
            got = _attend(module, x, mask, relative_pos, rel)
    except Exception:  # internals other than the ones this module knows: keep the original
        return None
    finally:
        module.train(was_training)
    result = _as_pair if isinstance(expected, tuple) else _as_tensor
    expected = expected[0] if isinstance(expected, tuple) else expected
    if not isinstance(expected, torch.Tensor) or expected.shape != got.shape:
        return None
    return result if torch.allclose(expected.float(), got.float(), atol=1e-4, rtol=1e-3) else None


# -- backends -------------------------------------------------------------------------------------

BACKENDS = ("auto", "hf", "acct", "disentangled_flash")
GPU_EXTRA = "pip install 'acct[gpu]'"


def use_backend(encoder: nn.Module, requested: str, device: torch.device) -> tuple[str, list[str]]:
    """Give a DeBERTa-v2/v3 encoder the attention backend `requested`; returns the one in use and notices.

    - `hf`: the library's own forward.
    - `acct`: this module's forward (any device).
    - `disentangled_flash`: the Triton kernels of the `disentangled-flash` package (CUDA only).
    - `auto`: `disentangled_flash` on CUDA when the package is installed, otherwise `acct`.

    Every backend keeps the parameter names, so checkpoints are the same whatever the backend; each
    is checked against the library's forward on a random padded input on `device`, and a backend
    that disagrees is not used. Other encoders keep their own attention.
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown attention backend {requested!r}; choose from {', '.join(BACKENDS)}")
    notices: list[str] = []
    if requested == "hf":
        return "hf", notices
    if not is_deberta(encoder):
        if requested != "auto":
            notices.append(f"attention: {requested} applies to DeBERTa-v2/v3 encoders only; this encoder keeps its own")
        return "hf", notices
    if requested in ("auto", "disentangled_flash"):
        reason = _flash_unavailable(device)
        if reason is None:
            if _install_flash(encoder, device):
                return "disentangled_flash", notices
            reason = "its output differed from the library's attention on this device"
        if requested == "disentangled_flash":
            notices.append(f"attention: disentangled_flash not used ({reason}); acct's attention is used instead")
    if install(encoder):
        return "acct", notices
    notices.append("attention: this DeBERTa's attention code differs from what acct expects; its own (slower) attention is used")
    return "hf", notices


def _flash_unavailable(device: torch.device) -> str | None:
    """Why the disentangled-flash kernels cannot run here, or None when they can."""
    if device.type != "cuda":
        return "its Triton kernels need CUDA"
    try:
        import disentangled_flash  # noqa: F401
    except ImportError:
        return f"the package is not installed: {GPU_EXTRA}"
    return None


def _install_flash(encoder: nn.Module, device: torch.device, backend: str = "triton") -> bool:
    """Swap in disentangled-flash's training encoder if it matches the library's forward; True when kept."""
    import disentangled_flash

    encoder.to(device)
    layers = list(encoder.encoder.layer)
    original_encoder, original_attention = encoder.encoder, [layer.attention.self for layer in layers]
    probe = _probe_input(encoder, device)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            expected = encoder(**probe).last_hidden_state
            disentangled_flash.optimize_deberta_training(encoder, backend=backend)
            got = encoder(**probe).last_hidden_state
        real = probe["attention_mask"].bool()
        agree = torch.allclose(expected[real].float(), got[real].float(), atol=1e-4, rtol=1e-3)
    except Exception:  # an encoder or a device the package does not support
        agree = False
    finally:
        encoder.train(was_training)
    if not agree:
        encoder.encoder = original_encoder
        for layer, module in zip(layers, original_attention):
            layer.attention.self = module
    return agree


def _probe_input(encoder: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    """A random padded batch reaching the log-scaled position buckets."""
    generator = torch.Generator().manual_seed(0)
    buckets = getattr(encoder.config, "position_buckets", 0) or 0
    length = max(9, buckets // 2 + 9)
    vocab = encoder.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (2, length), generator=generator)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
