"""Registers fake kernels and autograd for the compiled ops (torch.ops.maskattn.*)."""
import torch

from . import _C  # noqa: F401  (loading the extension registers the op schemas and kernels)

ops = torch.ops.maskattn


@torch.library.register_fake("maskattn::attention_mask")
def _attention_mask_fake(q_len, k_len, causal, align, align_offset, window_left, window_right, q_lengths,
                         k_lengths, key_mask, q_segments, k_segments, batch, dtype, device, masked_value):
    return torch.empty((batch, 1, q_len, k_len), dtype=dtype, device=device)


@torch.library.register_fake("maskattn::padding_mask_from_ids")
def _padding_mask_from_ids_fake(ids, pad_id, dtype, masked_value):
    return ids.new_empty(ids.shape, dtype=dtype)


@torch.library.register_fake("maskattn::random_token_mask")
def _random_token_mask_fake(ids, mask_id, p, special_ids, generator):
    return ids.new_empty(ids.shape), ids.new_empty(ids.shape, dtype=torch.bool)


@torch.library.register_fake("maskattn::masked_softmax")
def _masked_softmax_fake(scores, mask, scale, causal, align, align_offset, window_left, window_right, k_lengths,
                         key_mask, q_segments, k_segments):
    return torch.empty_like(scores, memory_format=torch.contiguous_format)


@torch.library.register_fake("maskattn::masked_softmax_backward")
def _masked_softmax_backward_fake(grad, probs, scale, causal, align, align_offset, window_left, window_right,
                                  k_lengths):
    return torch.empty_like(probs, memory_format=torch.contiguous_format)


@torch.library.register_fake("maskattn::masked_attention")
def _masked_attention_fake(q, k, v, mask, causal, align, align_offset, window_left, window_right, q_lengths,
                           k_lengths, key_mask, q_segments, k_segments, scale, return_weights):
    b, h, lq, _ = q.shape
    out = q.new_empty((b, h, lq, v.shape[-1]))
    lse = q.new_empty((b, h, lq), dtype=torch.float32)
    weights = q.new_empty((b, h, lq, k.shape[2])) if return_weights else q.new_empty((0,))
    return out, lse, weights


@torch.library.register_fake("maskattn::masked_attention_backward")
def _masked_attention_backward_fake(dout, dlse, dweights, q, k, v, out, lse, mask, causal, align, align_offset,
                                    window_left, window_right, q_lengths, k_lengths, key_mask, q_segments,
                                    k_segments, scale):
    c = torch.contiguous_format
    return (torch.empty_like(q, memory_format=c), torch.empty_like(k, memory_format=c),
            torch.empty_like(v, memory_format=c))


def _softmax_setup(ctx, inputs, output):
    (_scores, _mask, scale, causal, align, align_offset, window_left, window_right, k_lengths, _key_mask, _q_seg,
     _k_seg) = inputs
    # the band (causal, window, k_lengths) lets the backward skip keys whose probability is 0
    ctx.band = (scale, causal, align, align_offset, window_left, window_right)
    ctx.save_for_backward(output, k_lengths)


def _softmax_backward(ctx, grad):
    probs, k_lengths = ctx.saved_tensors
    scale, causal, align, align_offset, window_left, window_right = ctx.band
    grad_scores = ops.masked_softmax_backward(grad.to(probs.dtype), probs, scale, causal, align, align_offset,
                                              window_left, window_right, k_lengths)
    return (grad_scores,) + (None,) * 11


torch.library.register_autograd("maskattn::masked_softmax", _softmax_backward, setup_context=_softmax_setup)


def _attention_setup(ctx, inputs, output):
    q, k, v, mask, causal, align, align_offset, wl, wr, q_lengths, k_lengths, key_mask, q_seg, k_seg, scale, _ = inputs
    out, lse, _weights = output
    ctx.mask_options = (causal, align, align_offset, wl, wr, scale)
    ctx.save_for_backward(q, k, v, out, lse, mask, q_lengths, k_lengths, key_mask, q_seg, k_seg)
    ctx.set_materialize_grads(False)  # unused outputs (lse, weights) bring no zero tensors


def _attention_backward(ctx, dout, dlse, dweights):
    q, k, v, out, lse, mask, q_lengths, k_lengths, key_mask, q_seg, k_seg = ctx.saved_tensors
    causal, align, align_offset, wl, wr, scale = ctx.mask_options
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv = ops.masked_attention_backward(
        dout.to(out.dtype), dlse, dweights, q, k, v, out, lse, mask, causal, align, align_offset, wl, wr,
        q_lengths, k_lengths, key_mask, q_seg, k_seg, scale)
    return (dq, dk, dv) + (None,) * 13


torch.library.register_autograd("maskattn::masked_attention", _attention_backward,
                                setup_context=_attention_setup)
