"""python -m maskattn check|bench on CPU: exit codes, printed tables, JSON rows and the report."""
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))

from maskattn.__main__ import main  # noqa: E402
from maskattn.bench import attention_cpu, decode, softmax  # noqa: E402
from maskattn.bench.harness import run_case  # noqa: E402
from maskattn.bench.plot import plot_sweeps  # noqa: E402
from maskattn.bench.progress import Progress  # noqa: E402
from maskattn.bench.report import csrc_sha256, junit_counts  # noqa: E402
from maskattn.bench.work import allowed_pairs  # noqa: E402
from maskattn.reference import reference_allowed  # noqa: E402

CPU = torch.device("cpu")


def run_cli(*args, timeout=600):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "python"), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "maskattn", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def test_help_lists_both_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    top = capsys.readouterr().out
    assert "check" in top and "bench" in top
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    bench_help = capsys.readouterr().out
    for flag in ("--device", "--quick", "--only", "--json", "--report", "--plot", "--tests-junit", "--run-tests"):
        assert flag in bench_help


def test_check_cpu_table_and_exit_code():
    out = run_cli("check", "--device", "cpu", "--seed", "7")
    lines = out.stdout.splitlines()
    assert any(line.split()[:5] == ["op", "device", "dtype", "case", "max"] for line in lines)
    rows = [line for line in lines if line.startswith(("causal_mask", "padding_mask", "attention_mask",
                                                       "random_token_mask", "masked_softmax", "masked_attention"))]
    assert rows and all(" cpu " in r for r in rows)
    for op in ("causal_mask", "padding_mask_from_ids", "attention_mask", "random_token_mask",
               "masked_softmax fwd", "masked_softmax bwd", "masked_attention fwd", "masked_attention bwd"):
        assert any(r.startswith(op) for r in rows), op
    # masks and softmax must pass; attention rows may be errors until its CPU kernel lands
    assert not [r for r in rows if "FAIL" in r and not r.startswith("masked_attention")]
    failed = sum("FAIL" in r for r in rows)
    assert lines[-1] == f"check: {len(rows) - failed} passed, {failed} failed"
    assert out.returncode == (1 if failed else 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the clean skip without CUDA")
def test_cuda_only_commands_skip_without_cuda(capsys):
    for command in ("check", "bench"):
        assert main([command, "--device", "cuda"]) == 0
        assert "skipped" in capsys.readouterr().out


def test_tiny_bench_json_and_report(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite tests="7" failures="1" errors="1" skipped="2"/></testsuites>')
    sanitizer = tmp_path / "sanitizer.json"
    sanitizer.write_text('{"memcheck": 0, "racecheck": "refused"}')
    rows_path, report_path, plot_path = tmp_path / "rows.json", tmp_path / "report.json", tmp_path / "plot.png"
    out = run_cli("bench", "--device", "cpu", "--quick", "--only", "masks", "--json", str(rows_path),
                  "--report", str(report_path), "--tests-junit", str(junit), "--plot", str(plot_path),
                  "--sanitizer", str(sanitizer))
    assert out.returncode == 0, out.stderr
    assert "== masks | cpu ==" in out.stdout and "plot skipped" in out.stdout
    assert "[" in out.stderr and "\r" not in out.stderr  # progress: one line per step into a pipe
    assert "CPU timings reuse memory" in out.stdout and "allocator" not in out.stdout
    rows = json.loads(rows_path.read_text())
    mask_rows = [r for r in rows if r["family"] == "masks"]
    assert mask_rows
    for r in mask_rows:
        for key in ("name", "device", "dtype", "shape", "method", "ms", "gb_s", "pct_copy", "ratio"):
            assert key in r
        assert r["ms"] is not None and r["ms"] > 0 and r["device"] == "cpu"
    ours = [r for r in mask_rows if r["ours"]]
    assert ours and all(r["ratio"] == pytest.approx(1.0) and r["ratios"] for r in ours)
    assert {r["name"] for r in rows if r["family"] == "peak"} == {"copy bandwidth", "matmul", "fp32 FMA peak"}
    report = json.loads(report_path.read_text())
    assert report["torch"] == torch.__version__ and report["cuda"] == torch.version.cuda
    assert report["device"] and report["rows"] == rows
    assert report["csrc_sha256"] == csrc_sha256(ROOT)
    assert report["tests"] == {"passed": 3, "failed": 2, "skipped": 2}
    assert report["sanitizer"] == {"memcheck": 0, "racecheck": "refused"}
    assert report["commit"] is None or len(report["commit"]) == 40


def test_only_rejects_unknown_family():
    with pytest.raises(SystemExit, match="--only"):
        main(["bench", "--only", "softmax,nope"])


def test_softmax_case_rows_count_bytes_and_ratio():
    case = softmax.softmax_case((2, 3, 16, 24), torch.float32, "fwd+bwd", CPU)
    rows = run_case(case, {"copy_gb_s": 10.0, "matmul_flop_s": 1e11}, plan(), Progress(2, stream=io.StringIO()))
    assert [r["method"] for r in rows] == ["maskattn masked_softmax", "torch masked_fill+softmax"]
    ours, base = rows
    assert ours["error"] is None and base["error"] is None
    assert ours["gb_s"] == pytest.approx(5 * 2 * 3 * 16 * 24 * 4 / ours["ms"] / 1e6)
    assert base["ratio"] == pytest.approx(base["ms"] / ours["ms"])


@pytest.mark.parametrize("shape", [(2, 4, 4, 1, 100, 16), (3, 8, 2, 4, 70, 32)])
@pytest.mark.parametrize("variant", decode.VARIANTS)
def test_decode_rows_time_the_same_attention_and_count_cache_bytes(shape, variant):
    """maskattn (k_lengths, a draft causal at the cache's end) and SDPA (the bool mask, GQA) compute
    the same attention; the rate counts the K and V bytes the lengths leave."""
    batch, _, kv_heads, _, cache, dim = shape
    case = decode.decode_case(shape, variant, CPU, torch.float32)
    inputs = case.make_inputs()
    ours, sdpa = (m.build(inputs)() for m in case.methods)
    assert (ours - sdpa).abs().max() < 1e-5
    keys = int(inputs["k_lengths"].sum()) if variant == "ragged cache" else batch * cache
    assert case.work(inputs) == {"bytes": 2 * keys * kv_heads * dim * 4}
    rows = run_case(case, {"copy_gb_s": 10.0, "matmul_flop_s": 1e11}, plan(), Progress(2, stream=io.StringIO()))
    for r in rows:
        assert r["error"] is None
        moved = r["gb_s"] * r["ms"] * 1e6
        assert 2 * (batch * cache // 2) * kv_heads * dim * 4 <= moved * (1 + 1e-9)
        assert moved <= 2 * batch * cache * kv_heads * dim * 4 * (1 + 1e-9)


def test_failing_method_becomes_an_error_row():
    case = attention_cpu.attention_case((1, 2, 32, 16), "causal+k_lengths", "fwd", CPU, quick=True)

    def refuse(inputs):
        raise RuntimeError("not yet")

    case.methods[0].build = refuse
    rows = run_case(case, {"copy_gb_s": 10.0, "matmul_flop_s": 1e11}, plan(), Progress(2, stream=io.StringIO()))
    assert rows[0]["error"] == "RuntimeError: not yet" and rows[0]["ms"] is None and rows[0]["ratio"] is None
    assert rows[1]["error"] is None and rows[1]["gflop_s"] > 0 and rows[1]["ratio"] is None


@pytest.mark.parametrize("causal,align,window_left,lengths,q_len,k_len", [
    (True, "top_left", None, (32, 17), 32, 32),
    (True, "bottom_right", None, (40, 9), 20, 40),
    (True, "top_left", 5, (30, 30), 30, 30),
    (False, "top_left", None, (11, 0), 8, 11),
])
def test_allowed_pairs_matches_reference(causal, align, window_left, lengths, q_len, k_len):
    k_lengths = torch.tensor(lengths)
    ok = reference_allowed(len(lengths), 1, q_len, k_len, causal=causal, align=align,
                           window=(window_left, None) if window_left is not None else None, k_lengths=k_lengths)
    counted = allowed_pairs(q_len, k_len, causal=causal, align=align, window_left=window_left, k_lengths=k_lengths)
    assert counted == int(ok.sum())


def test_csrc_sha256_feeds_sorted_paths_and_bytes(tmp_path):
    files = {"csrc/b.cpp": b"int b;", "csrc/a/z.h": b"", "csrc/a.h": b"x"}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    expected = hashlib.sha256()
    for rel in sorted(files):
        expected.update(rel.encode() + b"\0" + files[rel] + b"\0")
    assert csrc_sha256(tmp_path) == expected.hexdigest()


def test_junit_counts_single_suite(tmp_path):
    path = tmp_path / "j.xml"
    path.write_text('<testsuite tests="5" failures="0" errors="0" skipped="1"></testsuite>')
    assert junit_counts(str(path)) == {"passed": 4, "failed": 0, "skipped": 1}


def test_plot_without_sweeps_says_why(tmp_path):
    assert plot_sweeps([{"family": "masks"}], str(tmp_path / "p.png"))


def plan():
    from maskattn.bench.timing import TimingPlan
    return TimingPlan(warmup=1, min_repeats=2, max_repeats=2, budget_s=0.0)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_plain_lines_off_a_terminal():
    log = io.StringIO()
    p = Progress(3, stream=log)
    p.show("compiling")
    for label in ("a", "b", "c"):
        p.step(label)
    p.close()
    text = log.getvalue()
    assert "\r" not in text
    assert [line.split()[0] for line in text.splitlines()] == ["[1/3]", "[2/3]", "[3/3]"]
    term = _Terminal()
    p = Progress(2, stream=term)
    p.step("a")
    p.close()
    assert term.getvalue().startswith("\r[") and term.getvalue().endswith("\n")


def test_help_shows_no_markup(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "`" not in capsys.readouterr().out


def test_peak_rates_take_the_fastest_repeat():
    from maskattn.bench.timing import TimingPlan, fastest_ms, median_ms
    delays = iter([0.0, 0.05, 0.05, 0.001, 0.05, 0.05, 0.05] * 3)
    sleep = lambda: time.sleep(next(delays))  # noqa: E731
    plan = TimingPlan(warmup=1, min_repeats=6, max_repeats=6, budget_s=0.0)
    assert fastest_ms(sleep, CPU, plan) < 25 < median_ms(sleep, CPU, plan)



def test_row_path_names_the_kernels_each_method_ran():
    """maskattn's own comparison rows (batched, no dropout) ran maskattn's attention kernels, not
    torch's; a packed row ran the attention kernel, a softmax row the softmax one."""
    from maskattn.bench.devices import row_path, cpu_name
    kernels = {"attention float32 products": "attention-kernel", "masked_softmax, masking, conversions": "softmax-kernel"}
    base = {"device": "cpu", "dtype": "float32", "torch_cpu_capability": "AVX2"}
    assert row_path(dict(base, family="packed", method="maskattn batched causal", ours=False), kernels) == \
        "attention-kernel"
    assert row_path(dict(base, family="attention", method="maskattn masked_attention no dropout", ours=False),
                    kernels) == "attention-kernel"
    assert row_path(dict(base, family="packed", method="sdpa block-diagonal bool mask", ours=False), kernels) == \
        "torch AVX2"
    assert row_path(dict(base, family="softmax", method="maskattn masked_softmax", ours=True), kernels) == \
        "softmax-kernel"
    with_tiles = dict(kernels, **{"attention softmax tiles": "tiles-kernel"})
    assert row_path(dict(base, family="attention", method="maskattn masked_attention", ours=True), with_tiles) == \
        "attention-kernel; softmax tiles tiles-kernel"
    with_decode = dict(kernels, **{"attention decoding": "decode-kernel"})
    assert row_path(dict(base, family="decode", method="maskattn masked_attention", ours=True), with_decode) == \
        "decode-kernel"
    assert row_path(dict(base, family="decode", method="sdpa", ours=False), with_decode) == "torch AVX2"
    assert row_path(dict(base, device="cuda", family="softmax", method="maskattn masked_softmax", ours=True),
                    kernels) == ""
    assert cpu_name().strip()


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_fma_peak_counts_every_thread_and_rates_use_it(isa):
    """The FMA probe does rounds x chains x lanes x 2 operations on each of torch's threads, on the
    vector width of the selected path, and attention rows on the CPU state their share of it."""
    from maskattn import _C
    from maskattn.bench.harness import rates
    from maskattn.bench.peaks import fma_peak_row

    if isa not in _C.build_info()["cpu_isa_supported"]:
        pytest.skip(f"this CPU lacks the {isa} path")
    before = _C.build_info()["cpu_isa"]
    _C._set_cpu_isa(isa)
    try:
        lanes, chains = (8, 12) if isa == "avx2" else (16, 24)
        assert _C._fma_peak_run(1000) == torch.get_num_threads() * 1000 * chains * lanes * 2
        row = fma_peak_row(plan())
    finally:
        _C._set_cpu_isa(before)
    assert row["family"] == "peak" and row["gflop_s"] > 0 and ("ymm" in row["method"]) == (isa == "avx2")
    with pytest.raises(ValueError, match="rounds"):
        _C._fma_peak_run(0)
    peaks = {"copy_gb_s": 10.0, "matmul_flop_s": 1e11, "fma_flop_s": row["gflop_s"] * 1e9}
    out = rates({"flops_unmasked": 2e9}, 10.0, peaks, CPU)
    assert out["pct_fma"] == pytest.approx(100.0 * out["gflop_s"] / row["gflop_s"])
