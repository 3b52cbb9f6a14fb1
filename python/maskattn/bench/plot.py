"""PNG of TFLOP/s (FlashAttention's count) against sequence length, one line per method and one
panel per sweep; rows without a sweep (CPU runs) are not plotted."""
from collections import defaultdict
from typing import List, Optional


def plot_sweeps(rows: List[dict], path: str) -> Optional[str]:
    """Writes the PNG and returns None, or returns why nothing was written."""
    sweeps = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("sweep") and r.get("tflop_s") is not None:
            sweeps[r["sweep"]][r["method"]].append((r["seq_len"], r["tflop_s"]))
    if not sweeps:
        return "no sweep rows with TFLOP/s (the L sweep runs on CUDA)"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not importable"
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 4.5), squeeze=False)
    for ax, (sweep, methods) in zip(axes[0], sweeps.items()):  # in run order: D=64 before D=128
        for method, points in sorted(methods.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length L (B*L = 16k tokens)")
        ax.set_ylabel("TFLOP/s (4*B*H*L*L*D, /2 causal)")
        ax.set_title(sweep)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
