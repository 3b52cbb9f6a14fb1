"""The training loop both examples share: AdamW with a one-cycle schedule, the loss of every step
printed under a progress bar, the curve saved as SVG, and the check CI runs (did the loss go down)."""
import sys
import time
from typing import Callable, Dict, List

import torch
from tqdm import tqdm

from loss_plot import save_loss_svg


def add_arguments(parser, steps: int, batch: int, plot: str) -> None:
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", default=plot, help="where to save the loss curve (SVG)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the loss went down")


def train(model: torch.nn.Module, next_batch: Callable[[], Dict[str, object]], args, lr: float,
          title: str) -> List[float]:
    """`args.steps` optimizer steps on `next_batch()`; returns the losses and saves their curve to `args.plot`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=args.steps, pct_start=0.1)
    losses = []
    start = time.perf_counter()
    model.train()
    with tqdm(range(args.steps), desc="training", unit="step", disable=None) as bar:  # no bar in logs (not a terminal)
        for step in bar:
            batch = {k: v.to(args.device) if isinstance(v, torch.Tensor) else v for k, v in next_batch().items()}
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            tqdm.write(f"step {step + 1:4d}  loss {losses[-1]:.4f}")
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s")
    save_loss_svg(losses, args.plot, title)
    print(f"loss curve saved to {args.plot}")
    model.eval()
    return losses


def exit_status(losses: List[float], check: bool) -> int:
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: first 5 steps {first:.3f}, last 5 steps {last:.3f}")
    if check and not last < first:
        print("the loss did not go down", file=sys.stderr)
        return 1
    return 0
