"""maskattn as a Hugging Face transformers attention backend.

>>> import maskattn.integrations.transformers as mat
>>> mat.register()                      # once per process
>>> model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="maskattn")

``register`` installs an attention function (``AttentionInterface``) and, under the same name, a
mask function (``AttentionMaskInterface``); an attention backend registered without the latter
silently receives no mask. Masks reach the kernels compactly:

- causal models: ``causal=True`` aligned to the cache (queries are the last ``Lq`` of ``Lk``
  positions: ``top_left`` without a cache, ``bottom_right`` or an integer offset with one);
- ``config.sliding_window``: ``window``;
- a 2-D padding mask (left or right): ``key_mask``; on CPU, right padding without a cache becomes
  ``q_lengths``/``k_lengths``, so padded query rows are skipped (their outputs are zeros, as in
  transformers' FlashAttention path; every other position matches ``sdpa``);
- packed rows (``position_ids`` restarting at 0 with no padding mask and no cache, or FlashAttention
  style ``cu_seq_lens_q/k`` keyword arguments): ``segments``;
- grouped-query attention: keys and values with fewer heads, no ``repeat_kv``;
- a user's 4-D mask (bool, or additive float): passed through as ``mask``.

Mask patterns without a compact form here (chunked attention, a model's own mask overlays) are
materialised by transformers' ``sdpa_mask`` and passed as ``mask``, with a warning. Model features
maskattn does not compute (logit soft-capping, attention sinks, paged caches) raise
``NotImplementedError`` naming the feature. ``output_attentions=True`` returns the probabilities.
"""
from .attention import attention_forward
from .masks import CompactMask, compact_mask

MIN_VERSION = "4.53"


def register(name: str = "maskattn") -> str:
    """Registers maskattn with transformers under ``name`` (for ``attn_implementation=name``); returns it."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface
    except ImportError as exc:
        raise ImportError(f"maskattn.integrations.transformers needs transformers >= {MIN_VERSION} "
                          "(AttentionInterface and AttentionMaskInterface): pip install \"maskattn[transformers]\"") from exc
    AttentionInterface.register(name, attention_forward)
    AttentionMaskInterface.register(name, compact_mask)
    return name


__all__ = ["CompactMask", "attention_forward", "compact_mask", "register"]
