"""The --report JSON: machine, versions, the source tree's identity, test counts and the rows."""
import hashlib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional

import torch

from .devices import device_name


def source_root() -> Path:
    """python/maskattn/bench -> repository root; the report needs a source checkout with csrc/."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "csrc").is_dir():
        raise SystemExit(f"maskattn bench --report: no csrc/ under {root}; run from a source checkout "
                         "(PYTHONPATH=<repo>/python) so the report can name the kernels it measured")
    return root


def csrc_sha256(root: Path) -> str:
    """SHA-256 over every file under csrc/, sorted by repo-relative POSIX path, each fed as
    path bytes, NUL, file bytes, NUL."""
    files = sorted((p for p in (root / "csrc").rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode("utf-8"))
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def git_commit(root: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def junit_counts(path: str) -> Dict[str, int]:
    """{"passed", "failed", "skipped"} from a pytest --junitxml file (errors count as failed)."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = failed = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}


def run_tests(root: Path) -> Dict[str, int]:
    """Runs the source tree's pytest suite and counts its results."""
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = os.path.join(tmp, "junit.xml")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root / "python"), env.get("PYTHONPATH")) if p)
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml_path}",
                        str(root / "tests")], cwd=root, env=env, check=False)
        if not os.path.exists(xml_path):
            raise SystemExit("maskattn bench --run-tests: pytest wrote no JUnit XML")
        return junit_counts(xml_path)


def build_report(rows: List[dict], devices: List[torch.device], tests: Optional[Dict[str, int]],
                 sanitizer: Optional[dict] = None) -> dict:
    root = source_root()
    main_device = next((d for d in devices if d.type == "cuda"), devices[0] if devices else torch.device("cpu"))
    import maskattn

    from .devices import cpu_name, torch_cpu_capability

    info = maskattn.build_info()
    return {
        "device": device_name(main_device),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "cpu_isa": info.get("cpu_isa"),
        "cpu_isa_supported": info.get("cpu_isa_supported"),
        "cpu_amx": info.get("cpu_amx"),
        "cpu_kernels": info.get("cpu_kernels"),
        "cpu_arch": info.get("cpu_arch"),
        "torch_cpu_capability": torch_cpu_capability(),
        "allocator": rows[0].get("allocator") if rows else None,
        "devices": [d.type for d in devices],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "commit": git_commit(root),
        "csrc_sha256": csrc_sha256(root),
        "tests": tests,
        "sanitizer": sanitizer,
        "rows": rows,
    }
