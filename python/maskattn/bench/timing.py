"""Median (or fastest) time of a callable: warm-up, then repeats until a count or a time budget.

CPU: time.perf_counter around each call (torch's default thread count is kept). CUDA: one pair of
CUDA events per call, all calls queued back to back and one synchronize at the end, so the GPU
never waits on Python between calls.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class TimingPlan:
    warmup: int
    min_repeats: int
    max_repeats: int
    budget_s: float  # time spent repeating one method, after warm-up


def plan_for(device: torch.device, quick: bool) -> TimingPlan:
    if device.type == "cuda":
        return TimingPlan(warmup=3, min_repeats=5, max_repeats=30 if quick else 100, budget_s=0.3 if quick else 1.0)
    return TimingPlan(warmup=1, min_repeats=3, max_repeats=10 if quick else 30, budget_s=0.5 if quick else 2.0)


def median_ms(fn: Callable[[], object], device: torch.device, plan: TimingPlan) -> float:
    return statistics.median(_samples_ms(fn, device, plan))


def fastest_ms(fn: Callable[[], object], device: torch.device, plan: TimingPlan) -> float:
    """The best of the repeats: for reference rates (a peak), where one slow sample must not count."""
    return min(_samples_ms(fn, device, plan))


def _samples_ms(fn, device: torch.device, plan: TimingPlan):
    return _cuda_samples_ms(fn, plan) if device.type == "cuda" else _cpu_samples_ms(fn, plan)


def _cpu_samples_ms(fn, plan: TimingPlan):
    for _ in range(plan.warmup):
        fn()
    samples = []
    started = time.perf_counter()
    while len(samples) < plan.max_repeats:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= plan.min_repeats and time.perf_counter() - started >= plan.budget_s:
            break
    return samples


def _cuda_samples_ms(fn, plan: TimingPlan):
    for _ in range(plan.warmup):
        fn()
    torch.cuda.synchronize()
    first = _cuda_times(fn, 1)[0]
    count = int(min(plan.max_repeats, max(plan.min_repeats, plan.budget_s * 1e3 / max(first, 1e-3))))
    return _cuda_times(fn, count)


def _cuda_times(fn, count: int):
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(count)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]
