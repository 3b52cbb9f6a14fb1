"""Context-parallel masked attention over torch.distributed: each rank holds a shard of the
sequence, key/value shards go round a ring of point-to-point transfers, and partial results merge
exactly through their log-sum-exp. Works with the process group users already create
(``torch.distributed.init_process_group``, ``torchrun``): gloo for CPU tensors, nccl for CUDA.

    q, k, v = (shard(t, layout="zigzag") for t in (q_full, k_full, v_full))
    out = context_parallel_attention(q, k, v, causal=True)      # this rank's shard of the output
    full = unshard(out)                                          # every rank gets the whole output
"""
from ._layout import shard, unshard
from .context_parallel import context_parallel_attention

__all__ = ["context_parallel_attention", "shard", "unshard"]
