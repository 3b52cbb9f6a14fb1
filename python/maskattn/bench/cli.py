"""``python -m maskattn bench``: arguments, the run over devices and families, and the outputs."""
import argparse
import json
import sys
from typing import Dict, List, Optional

import torch

from maskattn import build_info as ma_build_info

from . import attention_cpu, attention_cuda, attention_packed, decode, end_to_end, masks, softmax
from .allocator import keep_freed_memory
from .devices import DEVICE_CHOICES, annotate_rows, device_name, resolve_devices
from .harness import run_case
from .peaks import measure_peaks, peak_row_count
from .plot import plot_sweeps
from .progress import Progress
from .report import build_report, junit_counts, run_tests, source_root
from .table import render
from .timing import plan_for

FAMILIES = ("masks", "softmax", "attention", "decode", "packed", "models")


def scenario_cases(family: str, device: torch.device, quick: bool):
    if family == "attention":
        module = attention_cuda if device.type == "cuda" else attention_cpu
    else:
        module = {"masks": masks, "softmax": softmax, "decode": decode, "packed": attention_packed,
                  "models": end_to_end}[family]
    return module.cases(device, quick)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="all",
                        help="where to time (default: every available device)")
    parser.add_argument("--quick", action="store_true", help="a small subset (well under a minute on CPU)")
    parser.add_argument("--only", default=",".join(FAMILIES),
                        help=f"comma-separated families among {','.join(FAMILIES)} (default: all)")
    parser.add_argument("--json", metavar="PATH", help="write the rows as a JSON list")
    parser.add_argument("--report", metavar="PATH",
                        help="write a JSON report: device, versions, commit, csrc_sha256, tests, rows")
    parser.add_argument("--tests-junit", metavar="PATH", help="test counts for --report from pytest --junitxml")
    parser.add_argument("--run-tests", action="store_true", help="run the source tree's pytest for --report")
    parser.add_argument("--sanitizer", metavar="PATH",
                        help="compute-sanitizer results for --report: a JSON object, tool -> errors found or "
                             "\"refused\" (.ci/gpu writes it)")
    parser.add_argument("--fresh-pages", action="store_true",
                        help="let the CPU allocator return freed memory to the OS (every allocation faults pages)")
    parser.add_argument("--plot", metavar="PATH", help="PNG of TFLOP/s against L per method (needs matplotlib)")
    parser.set_defaults(run=run)


def parse_families(text: str) -> List[str]:
    chosen = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown or not chosen:
        raise SystemExit(f"maskattn bench: --only takes {','.join(FAMILIES)}, got {text!r}")
    return chosen


def run(args: argparse.Namespace) -> int:
    families = parse_families(args.only)
    if args.report:
        source_root()  # fail before timing anything when the report could not be written
    devices = resolve_devices(args.device)
    if not devices:
        print("maskattn bench: CUDA is not available; nothing to time (skipped)")
        return 0
    if any(d.type == "cpu" for d in devices) and not args.fresh_pages:
        print(keep_freed_memory())
    allocator = "fresh pages" if args.fresh_pages else "freed memory kept"
    rows = bench_devices(devices, families, args.quick, allocator)
    print(render(rows))
    write_outputs(rows, devices, args)
    return 0


def bench_devices(devices, families, quick: bool, allocator: str = "freed memory kept") -> List[dict]:
    rows: List[dict] = []
    for device in devices:
        device_rows: List[dict] = []
        path = f", maskattn CPU path {ma_build_info()['cpu_isa']}" if device.type == "cpu" else ""
        print(f"# {device.type}: {device_name(device)}, torch {torch.__version__}, threads {torch.get_num_threads()}"
              f"{path}", flush=True)  # how freed memory is treated is said in words below
        plan = plan_for(device, quick)
        cases = [c for f in families for c in scenario_cases(f, device, quick)]
        progress = Progress(peak_row_count(device) + sum(len(c.methods) for c in cases))
        peak_step = f"{device.type} copy bandwidth, matmul{' and FMA peak' if device.type == 'cpu' else ''}"
        progress.show(peak_step)
        peaks, peak_rows = measure_peaks(device, plan, quick)
        for _ in peak_rows:
            progress.step(peak_step)
        device_rows += peak_rows
        for case in cases:
            device_rows += run_case(case, peaks, plan, progress)
        progress.close()
        annotate_rows(device_rows, device, allocator)
        rows += device_rows
    return rows


def sanitizer_results(path: Optional[str]) -> Optional[dict]:
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if not isinstance(results, dict):
        raise SystemExit(f"maskattn bench --sanitizer: {path} must hold a JSON object (tool -> result)")
    return results


def write_outputs(rows: List[dict], devices, args) -> None:
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
        print(f"rows written to {args.json}")
    if args.plot:
        why_not = plot_sweeps(rows, args.plot)
        print(f"plot skipped: {why_not}" if why_not else f"plot written to {args.plot}")
    if args.report:
        tests: Optional[Dict[str, int]] = None
        if args.tests_junit:
            tests = junit_counts(args.tests_junit)
        elif args.run_tests:
            tests = run_tests(source_root())
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(build_report(rows, devices, tests, sanitizer_results(args.sanitizer)), f, indent=1)
        print(f"report written to {args.report}")
    sys.stdout.flush()
