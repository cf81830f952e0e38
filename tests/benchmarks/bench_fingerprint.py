"""Benchmark: the cost of content-tracking a 1,875-image `path:` folder (BUS-BRA's size).

Run: python tests/benchmarks/bench_fingerprint.py [N_FILES] [KB_PER_FILE]
Times, on files of random bytes in a scratch folder: the content digest when the DAG is first
built (every file hashed), when it is built again (the stored hash cache: only stat calls),
the fingerprint_source job, and the folder's provenance record (every file listed and hashed).
Each step starts from an empty in-process memo, as a new process does. Numbers are of this
machine (disk cache warm after the files are written).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from meddap.common import hashing
from meddap.data.fingerprint import content_digest, fingerprint_source
from meddap.run.provenance import hashed


def make_folder(root: Path, n_files: int, kb: int) -> None:
    rng = np.random.default_rng(0)
    for k in range(n_files):
        folder = root / ("benign" if k % 3 else "malignant")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"bus_{k:04d}-l.png").write_bytes(rng.bytes(kb * 1024))


def timed(label: str, step: Callable[[], object]) -> None:
    hashing._MEMO.clear()  # a new process
    start = time.perf_counter()
    step()
    print(f"{label:<48} {time.perf_counter() - start:7.2f} s")


def main() -> None:
    n_files = int(sys.argv[1]) if len(sys.argv) > 1 else 1875
    kb = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        root = Path(tmp) / "bus_bra"
        make_folder(root, n_files, kb)
        entry = {"path": str(root)}
        print(f"{n_files} files of {kb} KB ({n_files * kb / 1024:.0f} MB)")
        timed(
            "DAG build, first run (hash every file)", lambda: content_digest("d", entry, "path_dir")
        )
        timed(
            "DAG build, rerun (stored cache: stat only)",
            lambda: content_digest("d", entry, "path_dir"),
        )
        digest = content_digest("d", entry, "path_dir")
        timed(
            "fingerprint_source job (stored cache)",
            lambda: fingerprint_source(
                raw=str(root), source="source.json", dataset="d", content=digest
            ),
        )
        timed("provenance record of the folder (no cache)", lambda: hashed(root))


if __name__ == "__main__":
    main()
