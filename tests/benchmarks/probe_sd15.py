"""Full-size SD v1.x probe on CPU: random weights in the exact SD v1.4/v1.5 architecture (UNet
859.5 M parameters), saved as a local diffusers folder, through every diffusion stage at 64 px
(latent cache, LoRA, text synthesis, a fresh ControlNet, the mask-conditioned pool, a segmenter),
then a dry run with the shipped tiny ControlNet, which must stop at planning naming both folders.

    python tests/benchmarks/probe_sd15.py WORKDIR

About 4 GB of disk and 10-30 min on two cores; prints times, the ControlNet's training
resolution and the mismatch message. Times depend on the machine and its load.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sd_shaped import FULL, sd_pipeline  # noqa: E402
from tests.snakemake_runner import snakemake  # noqa: E402
from tests.workflow.test_sd_shaped_workflow import CONTROLNET, TARGETS, sd_config  # noqa: E402


def main(root: Path) -> int:
    model = root / "sd-v1-full"
    started = time.perf_counter()
    if not (model / "model_index.json").exists():
        pipe = sd_pipeline(model, FULL)
        print("UNet parameters:", sum(p.numel() for p in pipe.unet.parameters()), flush=True)
        pipe.save_pretrained(model, safe_serialization=True)
    print(f"model ready in {time.perf_counter() - started:.0f} s", flush=True)
    (work := root / "run").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = snakemake(work, *TARGETS, config=sd_config(model))
    print(f"targets: rc {run.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
    if run.returncode:
        print(run.stderr[-3000:])
        return 1
    for log in sorted(work.glob(f"{CONTROLNET}/train_log.parquet")):
        print("ControlNet training resolution:", sorted(set(pd.read_parquet(log)["resolution"])))
    config = sd_config(model)
    config["segmentation"]["pairs"]["controlnet"]["mask"] = "resources/tiny-controlnet-phantom"
    (bad := root / "mismatch").mkdir(exist_ok=True)
    stop = snakemake(bad, TARGETS[2], config=config, extra=("-n",))
    print("mismatched ControlNet: rc", stop.returncode)
    print([line for line in (stop.stdout + stop.stderr).splitlines() if "ControlNet" in line][:1])
    return 0 if stop.returncode else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
