"""Inputs that once corrupted the heap (abort: "double free or corruption", or a hang in an OpenMP
barrier). Each runs in a child process, so an abort or a hang fails its test instead of taking
pytest down; the child also checks the result against the float64 reference."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import maskattn

PACKAGE_ROOT = str(Path(maskattn.__file__).resolve().parents[1])  # the child imports this very build

PRELUDE = """
import torch
import maskattn as ma
from maskattn.reference import reference_attention, reference_attention_mask, reference_masked_softmax
"""

# A window whose band lies wholly past the keys (top_left, Lq > Lk + left + 1): MaskSpec::key_range
# returned begin > k_len, and the row fills of the CPU mask builder and softmax wrote past the row.
REPRODUCERS = {
    "masked_softmax": """
        x = torch.randn(2, 4, 128, 32)
        got = ma.masked_softmax(x, window=(8, 0))
        assert torch.allclose(got.double(), reference_masked_softmax(x, window=(8, 0)), atol=1e-6)
        for dtype in (torch.float16, torch.bfloat16, torch.float64):
            ma.masked_softmax(x.to(dtype), window=(8, 0), key_mask=torch.rand(2, 32) > 0.5)
        x.requires_grad_()
        ma.masked_softmax(x, window=(8, 0)).backward(torch.randn(2, 4, 128, 32))
        assert x.grad[:, :, 40:].abs().max() == 0
    """,
    "attention_mask": """
        got = ma.attention_mask(128, 32, window=(8, 0))
        assert torch.equal(got, reference_attention_mask(128, 32, window=(8, 0)))
    """,
    "causal_mask": """
        got = ma.causal_mask(100, 10, window=(4, 0))
        assert torch.equal(got, reference_attention_mask(100, 10, causal=True, window=(4, 0))[0, 0])
    """,
    "attention_mask_float32": """
        for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            got = ma.attention_mask(64, 26, window=(1, 1), dtype=dtype)
            assert torch.equal(got, reference_attention_mask(64, 26, window=(1, 1), dtype=dtype))
    """,
    "masked_attention_same_inputs": """
        q, k, v = torch.randn(2, 4, 128, 16), torch.randn(2, 4, 32, 16), torch.randn(2, 4, 32, 16)
        out = ma.masked_attention(q, k, v, window=(8, 0))
        ref = reference_attention(q, k, v, window=(8, 0))[0]
        assert (out.double() - ref).abs().max() < 1e-5
    """,
}


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_band_past_the_keys_in_a_child_process(name):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    code = PRELUDE + textwrap.dedent(REPRODUCERS[name]) + "print('ok')\n"
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: the child process hung (an OpenMP barrier waiting on a crashed thread?)")
    report = done.stderr if len(done.stderr) < 6000 else done.stderr[:3000] + "\n...\n" + done.stderr[-2000:]
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (
        f"{name}: child exited with {done.returncode}\n{report}")  # a sanitizer's report starts at the top
