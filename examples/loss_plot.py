"""Loss curve as a standalone SVG file (no plotting library needed)."""
from typing import Sequence


def save_loss_svg(losses: Sequence[float], path: str, title: str, width: int = 640, height: int = 360) -> None:
    left, right, top, bottom = 60, 20, 40, 40
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    steps = max(len(losses) - 1, 1)

    def xy(i: int, loss: float):
        return (left + (width - left - right) * i / steps,
                top + (height - top - bottom) * (hi - loss) / span)

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, l) for i, l in enumerate(losses)))
    ticks = "".join(
        f'<text x="{left - 6}" y="{xy(0, v)[1] + 4:.1f}" text-anchor="end" font-size="11">{v:.2f}</text>'
        for v in (hi, (hi + lo) / 2, lo))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">'
           f'<rect width="100%" height="100%" fill="white"/>'
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>'
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>'
           f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>'
           f'{ticks}<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="11">step (1 to '
           f'{len(losses)})</text><polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/></svg>')
    with open(path, "w", encoding="utf-8") as f:
        f.write(svg)
