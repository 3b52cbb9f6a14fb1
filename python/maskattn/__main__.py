"""``python -m maskattn check|bench``: correctness against float64 references, and timings."""
import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    from . import check
    from .bench import cli as bench_cli

    parser = argparse.ArgumentParser(prog="python -m maskattn", description=__doc__.split("\n")[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="{check,bench}")
    check.add_arguments(sub.add_parser(
        "check", help="every op against its float64 reference; non-zero exit on any failure",
        description="Every public op against its float64 reference on fresh random inputs, per device and dtype."))
    bench_cli.add_arguments(sub.add_parser(
        "bench", help="timings against torch baselines (table, JSON, report, plot)",
        description="Timings of maskattn against torch baselines on each available device, as ratios."))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
