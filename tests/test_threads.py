"""Several Python threads calling every op at once on shared inputs: each gets exactly the answer of
a call made alone (the kernels keep no state between calls, and OpenMP teams nest per thread)."""
import threading

import torch

import maskattn as ma

THREADS, ROUNDS = 4, 3


def shared_inputs():
    lengths = torch.tensor([29, 7, 0])
    key_mask = torch.rand(3, 29) > 0.3
    return {
        "scores": torch.randn(3, 4, 19, 29), "grad": torch.randn(3, 4, 19, 29),
        "q": torch.randn(3, 4, 19, 16), "k": torch.randn(3, 2, 29, 16), "v": torch.randn(3, 2, 29, 8),
        "dout": torch.randn(3, 4, 19, 8), "lengths": lengths, "q_lengths": torch.tensor([19, 5, 19]),
        "key_mask": key_mask, "ids": torch.randint(0, 9, (3, 29)),
    }


def every_op(x):
    """Every public op (forward and backward), as a dict of result tensors."""
    out = {
        "causal_mask": ma.causal_mask(19, 29, align="bottom_right", window=(5, 1)),
        "attention_mask": ma.attention_mask(19, 29, causal=True, q_lengths=x["q_lengths"], k_lengths=x["lengths"],
                                            key_mask=x["key_mask"], dtype=torch.float32),
        "padding_mask": ma.padding_mask(x["lengths"], 29),
        "padding_mask_from_ids": ma.padding_mask_from_ids(x["ids"], 0, dtype=torch.bfloat16),
    }
    out["random_token_mask"] = ma.random_token_mask(x["ids"], 99, 0.3, special_ids=[0, 1],
                                                    generator=torch.Generator().manual_seed(5))[0]
    s = x["scores"].clone().requires_grad_()
    probs = ma.masked_softmax(s, scale=0.7, causal=True, k_lengths=x["lengths"], key_mask=x["key_mask"])
    out["masked_softmax"] = probs
    out["masked_softmax grad"], = torch.autograd.grad(probs, s, x["grad"])
    q, k, v = (x[n].clone().requires_grad_() for n in "qkv")
    o, w = ma.masked_attention(q, k, v, causal=True, align="bottom_right", q_lengths=x["q_lengths"],
                               k_lengths=x["lengths"], key_mask=x["key_mask"], return_weights=True)
    out["masked_attention"], out["masked_attention weights"] = o, w
    for name, g in zip("qkv", torch.autograd.grad(o, (q, k, v), x["dout"])):
        out[f"masked_attention d{name}"] = g
    return {name: t.detach() for name, t in out.items()}


def test_every_op_from_several_threads_at_once():
    x = shared_inputs()
    alone = every_op(x)
    failures, start = [], threading.Barrier(THREADS)

    def worker():
        try:
            start.wait()
            for _ in range(ROUNDS):
                got = every_op(x)
                failures.extend(name for name in alone if not torch.equal(got[name], alone[name]))
        except Exception as exc:  # noqa: BLE001  (reported below, with the thread's error)
            failures.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not failures, sorted(set(failures))
    assert torch.equal(x["lengths"], torch.tensor([29, 7, 0])), "shared inputs are never written"
