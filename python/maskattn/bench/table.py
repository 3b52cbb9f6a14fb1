"""Plain-text tables: one section per family and device, columns chosen by what the rows measured."""
from itertools import groupby
from typing import List, Sequence

# (row key, header, format) for the rate columns, shown only where a section has them
RATE_COLUMNS = (
    ("tok_s", "tokens/s", "{:.0f}"),
    ("gb_s", "GB/s", "{:.1f}"),
    ("pct_copy", "%copy", "{:.0f}%"),
    ("gflop_s", "GFLOP/s", "{:.1f}"),
    ("tflop_s", "TFLOP/s", "{:.1f}"),
    ("tflop_s_unmasked", "TFLOP/s unmasked", "{:.1f}"),
    ("pct_matmul", "%matmul", "{:.0f}%"),
    ("pct_fma", "%FMA peak", "{:.0f}%"),
)


def format_table(headers: Sequence[str], rows: List[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return fmt.format(value) if value is not None else ""


def _speedup(row: dict) -> str:
    """maskattn's speedup over this baseline; blank on maskattn's own row."""
    if row.get("ours") or row.get("ratio") is None:
        return ""
    return f"{row['ratio']:.2f}x"


def section(rows: List[dict]) -> str:
    rate_cols = [c for c in RATE_COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    headers = ["case", "dtype", "shape", "mode", "method", "ms"] + [h for _, h, _ in rate_cols]
    headers += ["maskattn speedup"]
    with_path = any(r.get("path") for r in rows)
    headers += ["path"] * with_path + ["note"]
    body = []
    previous = None
    for r in rows:
        key = (r["name"], r["dtype"], tuple(r["shape"]), r["mode"])
        shown = ["", "", "", ""] if key == previous else [r["name"], r["dtype"], "x".join(map(str, r["shape"])), r["mode"]]
        previous = key
        body.append(shown + [r["method"], _cell(r, "ms", "{:.3f}")] + [_cell(r, k, f) for k, _, f in rate_cols]
                    + [_speedup(r)] + [(r.get("path") or "")[:48]] * with_path + [(r.get("error") or "")[:70]])
    return format_table(headers, body)


def render(rows: List[dict]) -> str:
    out = []
    for (family, device), group in groupby(rows, key=lambda r: (r["family"], r["device"])):
        out.append(f"== {family} | {device} ==")
        out.append(section(list(group)))
        out.append("")
    return "\n".join(out)
