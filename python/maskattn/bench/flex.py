"""FlexAttention baselines: one compiled flex_attention and block masks built outside the timing."""
from typing import Optional

import torch

_compiled = None


def compiled_flex():
    """torch.compile(flex_attention), compiled lazily on its first call (inside the warm-up)."""
    global _compiled
    if _compiled is None:
        from torch.nn.attention.flex_attention import flex_attention
        import torch._dynamo.config as dynamo_config
        # each shape and mask compiles once; the default limit would fall back to slow eager code
        for limit in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo_config, limit):
                setattr(dynamo_config, limit, max(getattr(dynamo_config, limit), 256))
        _compiled = torch.compile(flex_attention, dynamic=False)
    return _compiled


def block_mask(batch: int, q_len: int, k_len: int, device: torch.device, *, causal: bool = True,
               window_left: Optional[int] = None, k_lengths: Optional[torch.Tensor] = None):
    """create_block_mask for causal (top_left), an optional left window and optional key lengths."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q_idx, kv_idx):
        ok = q_idx >= kv_idx if causal else q_idx >= 0
        if window_left is not None:
            ok = ok & (q_idx - kv_idx <= window_left)
        if k_lengths is not None:
            ok = ok & (kv_idx < k_lengths[b])
        return ok

    per_batch = batch if k_lengths is not None else None  # masks that ignore b are built once
    return create_block_mask(mask_mod, per_batch, None, q_len, k_len, device=device)


def forget_compiled() -> None:
    """After a failed call: dynamo would otherwise run later shapes through a slow fallback."""
    global _compiled
    torch._dynamo.reset()
    _compiled = None


def flex_method_call(q, k, v, mask):
    flex = compiled_flex()

    def call():
        try:
            return flex(q, k, v, block_mask=mask)
        except Exception:
            forget_compiled()
            raise
    return call
