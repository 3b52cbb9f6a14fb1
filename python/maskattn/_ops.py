"""Registers fake kernels and autograd for the compiled ops (torch.ops.maskattn.*)."""
import torch
import torch.autograd.forward_ad as _forward_ad

from . import _C  # loading the extension registers the op schemas and kernels
from . import _grads

ops = torch.ops.maskattn

# The ops' typed calls below the autograd key (~0.5 us of argument handling against ~5 us through
# torch.ops' generic entry); they skip __torch_function__, so only for arguments without one.
_BELOW_AUTOGRAD = {
    ops.masked_attention.default: _C.below_autograd.masked_attention,
    ops.masked_attention_backward.default: _C.below_autograd.masked_attention_backward,
    ops.masked_softmax.default: _C.below_autograd.masked_softmax,
    ops.masked_softmax_backward.default: _C.below_autograd.masked_softmax_backward,
}


def call_below_autograd(op, *args):
    """``op(*args)`` (all of the op's arguments) with no gradient recorded."""
    if not torch._C._has_torch_function(args):
        return _BELOW_AUTOGRAD[op](*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def call_op(op, grad_inputs, args, output_only=False):
    """``op(*args)`` with all of the op's arguments, by the shortest way eager mode allows: below the
    autograd key when none of ``grad_inputs`` needs a gradient (by the op's typed entry when no
    argument has __torch_function__), else through an autograd.Function holding the same formulas
    (the registered kernel's generic argument handling costs ~80 us a call on an op of 18
    arguments). Under torch.compile the op is called as is, so the graph records it with its
    registered autograd. ``output_only``: masked_attention's first output alone."""
    if torch.compiler.is_compiling():
        return op(*args)[0] if output_only else op(*args)
    if _forward_ad._current_level >= 0 and any(
            t is not None and _forward_ad.unpack_dual(t).tangent is not None for t in grad_inputs):
        # the op has no forward-mode formula: its tangent would silently be lost
        raise NotImplementedError(f"maskattn: {op._opname} does not support forward-mode AD (torch.func.jvp, "
                                  "torch.autograd.forward_ad dual tensors); use reverse mode "
                                  "(.backward() or torch.autograd.grad)")
    if torch.is_grad_enabled() and torch._C._any_requires_grad(*grad_inputs):
        plain_apply, for_transforms = _EAGER_AUTOGRAD[op]
        outputs = for_transforms.apply(*args) if torch._C._are_functorch_transforms_active() else plain_apply(args)
        return outputs[0] if output_only else outputs
    if output_only and not torch._C._has_torch_function(args):
        return _C.below_autograd.masked_attention_output(*args)
    outputs = call_below_autograd(op, *args)
    return outputs[0] if output_only else outputs


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


@torch.library.register_fake("maskattn::masked_softmax_out")
def _masked_softmax_out_fake(scores, mask, scale, causal, align, align_offset, window_left, window_right, k_lengths,
                             key_mask, q_segments, k_segments, out):
    return None


@torch.library.register_fake("maskattn::masked_softmax_backward")
def _masked_softmax_backward_fake(grad, probs, scale, causal, align, align_offset, window_left, window_right,
                                  k_lengths, mask=None, mask_grad=False):
    grad_mask = torch.empty_like(mask, memory_format=torch.contiguous_format) if mask_grad else probs.new_empty((0,))
    return torch.empty_like(probs, memory_format=torch.contiguous_format), grad_mask


@torch.library.register_fake("maskattn::masked_attention")
def _masked_attention_fake(q, k, v, mask, causal, align, align_offset, window_left, window_right, q_lengths,
                           k_lengths, key_mask, q_segments, k_segments, scale, return_weights, dropout_p=0.0,
                           generator=None):
    b, h, lq, _ = q.shape
    out = q.new_empty((b, h, lq, v.shape[-1]))
    lse = q.new_empty((b, h, lq), dtype=torch.float32)
    weights = q.new_empty((b, h, lq, k.shape[2])) if return_weights else q.new_empty((0,))
    row_stats = q.new_empty((b, h, lq, 2), dtype=torch.float32)
    rng_state = torch.empty((2,), dtype=torch.int64, device="cpu")
    return out, lse, weights, row_stats, rng_state


@torch.library.register_fake("maskattn::masked_attention_backward")
def _masked_attention_backward_fake(dout, dlse, dweights, q, k, v, out, lse, mask, causal, align, align_offset,
                                    window_left, window_right, q_lengths, k_lengths, key_mask, q_segments,
                                    k_segments, scale, row_stats=None, dropout_p=0.0, rng_state=None,
                                    mask_grad=False):
    c = torch.contiguous_format
    grad_mask = torch.empty_like(mask, memory_format=c) if mask_grad else q.new_empty((0,))
    return (torch.empty_like(q, memory_format=c), torch.empty_like(k, memory_format=c),
            torch.empty_like(v, memory_format=c), grad_mask)


@torch.library.register_fake("maskattn::dropout_keep_mask")
def _dropout_keep_mask_fake(batch, heads, q_len, k_len, p, seed, offset, device):
    return torch.empty((batch, heads, q_len, k_len), dtype=torch.bool, device=device)


def _additive(mask):
    """The explicit mask when it is additive (float): the one whose gradient the backward can give."""
    return mask if mask is not None and mask.dtype.is_floating_point else None


def _softmax_setup(ctx, inputs, output):
    (_scores, mask, scale, causal, align, align_offset, window_left, window_right, k_lengths, _key_mask, _q_seg,
     _k_seg) = inputs
    # the band (causal, window, k_lengths) and the explicit mask's blocks let the backward skip keys
    # whose probability is 0
    ctx.band = (scale, causal, align, align_offset, window_left, window_right)
    ctx.save_for_backward(output, k_lengths, mask)


def _softmax_backward(ctx, grad):
    probs, k_lengths, mask = ctx.saved_tensors
    scale, causal, align, align_offset, window_left, window_right = ctx.band
    mask_grad = _additive(mask) is not None and ctx.needs_input_grad[1]
    if torch.is_grad_enabled():  # create_graph: a backward that can itself be differentiated
        grad_scores, grad_mask = _grads.softmax_backward(grad, probs, scale, mask if mask_grad else None)
        return (grad_scores, grad_mask) + (None,) * 10
    grad_scores, grad_mask = call_below_autograd(ops.masked_softmax_backward.default, grad.to(probs.dtype), probs,
                                                 scale, causal, align, align_offset, window_left, window_right,
                                                 k_lengths, mask, mask_grad)
    return (grad_scores, grad_mask if mask_grad else None) + (None,) * 10


torch.library.register_autograd("maskattn::masked_softmax", _softmax_backward, setup_context=_softmax_setup)


def _attention_setup(ctx, inputs, output):
    (q, k, v, mask, causal, align, align_offset, wl, wr, q_lengths, k_lengths, key_mask, q_seg, k_seg, scale, _,
     dropout_p, _generator) = inputs
    out, lse, _weights, row_stats, rng_state = output
    ctx.mask_options = (causal, align, align_offset, wl, wr, scale, dropout_p)
    # row_stats keep the probabilities exact where lse rounds; rng_state replays the dropout
    ctx.save_for_backward(q, k, v, out, lse, row_stats, rng_state, mask, q_lengths, k_lengths, key_mask, q_seg,
                          k_seg)
    ctx.mark_non_differentiable(row_stats, rng_state)
    ctx.set_materialize_grads(False)  # unused outputs (lse, weights) bring no zero tensors


def _attention_backward(ctx, dout, dlse, dweights, _drow_stats, _drng_state):
    q, k, v, out, lse, row_stats, rng_state, mask, q_lengths, k_lengths, key_mask, q_seg, k_seg = ctx.saved_tensors
    causal, align, align_offset, wl, wr, scale, dropout_p = ctx.mask_options
    mask_grad = _additive(mask) is not None and ctx.needs_input_grad[3]
    if torch.is_grad_enabled():
        if dropout_p > 0:
            raise RuntimeError("maskattn.masked_attention: double backward (create_graph=True) is not supported "
                               "with dropout_p > 0; use dropout_p=0 for gradient penalties or Hessian products")
        # create_graph: differentiable formulas over the weights, recomputed by the (differentiable) forward
        args = (q, k, v, mask, causal, align, align_offset, wl, wr, q_lengths, k_lengths, key_mask, q_seg, k_seg, scale,
                True, 0.0, None)
        weights = call_op(ops.masked_attention.default, (q, k, v, mask), args)[2]
        dq, dk, dv, grad_mask = _grads.attention_backward(dout, dlse, dweights, q, k, v, weights, scale,
                                                          mask if mask_grad else None)
        return (dq, dk, dv, grad_mask) + (None,) * 14
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv, grad_mask = call_below_autograd(
        ops.masked_attention_backward.default, dout.to(out.dtype), dlse, dweights, q, k, v, out, lse, mask, causal,
        align, align_offset, wl, wr, q_lengths, k_lengths, key_mask, q_seg, k_seg, scale, row_stats, dropout_p,
        rng_state, mask_grad)
    return (dq, dk, dv, grad_mask if mask_grad else None) + (None,) * 14


torch.library.register_autograd("maskattn::masked_attention", _attention_backward,
                                setup_context=_attention_setup)


def _eager_autograd(op, setup_context, backward):
    """Two ways to run ``op`` below the autograd key with the op's registered formulas: the apply
    of an autograd.Function with the context set up inside forward, called at torch's C level
    (autograd.Function.apply would bind the signature of one with a separate setup_context, ~30 us,
    and scan all 18 arguments for dead functorch wrappers, ~2.5 us, where only the tensor ones can
    be), and an autograd.Function with a separate setup_context, as torch.func transforms (grad,
    vjp, jacrev) require."""

    def below_autograd(*args):
        return call_below_autograd(op, *args)

    def forward_with_context(ctx, *args):
        output = below_autograd(*args)
        setup_context(ctx, args, output)
        return output

    name = "".join(word.title() for word in op._opname.split("_"))  # grad_fn: MaskedAttentionBackward
    plain = type(name, (torch.autograd.Function,),
                 {"forward": staticmethod(forward_with_context), "backward": staticmethod(backward)})
    c_apply = super(torch.autograd.function._SingleLevelFunction, plain).apply
    tensor_positions = [i for i, a in enumerate(op._schema.arguments) if "Tensor" in str(a.type)]
    unwrap_if_dead = torch._C._functorch.unwrap_if_dead

    def plain_apply(args):
        # as autograd.Function.apply outside transforms: a tensor that escaped a finished
        # transform (torch.func.vjp's outputs) enters as the plain tensor it wraps
        args = list(args)
        for i in tensor_positions:
            if args[i] is not None:
                args[i] = unwrap_if_dead(args[i])
        return c_apply(*args)

    for_transforms = type(f"{name}UnderTransforms", (torch.autograd.Function,),
                          {"forward": staticmethod(below_autograd), "setup_context": staticmethod(setup_context),
                           "backward": staticmethod(backward), "generate_vmap_rule": True})
    return plain_apply, for_transforms


_EAGER_AUTOGRAD = {
    ops.masked_softmax.default: _eager_autograd(ops.masked_softmax.default, _softmax_setup, _softmax_backward),
    ops.masked_attention.default: _eager_autograd(ops.masked_attention.default, _attention_setup,
                                                  _attention_backward),
}
