"""The `meddap` command: helpers around the workflow (the workflow itself runs with snakemake)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from meddap.common.errors import MeddapError


def _lora_params(args: argparse.Namespace) -> None:
    from meddap.lora.params import lora_params_table

    print(lora_params_table(tuple(args.ranks)))


def _audit(args: argparse.Namespace) -> None:
    from meddap.run.audit import audit

    print(audit(args.path, args.root))


def _slurm_profile(args: argparse.Namespace) -> None:
    from meddap.run.slurm_profile import Cluster, write_profile

    cluster = Cluster(
        partition=args.partition,
        account=args.account,
        jobs=args.jobs,
        retries=args.retries,
        status_command=args.status_command,
        init_seconds=args.init_seconds,
    )
    print(f"wrote {write_profile(cluster, args.dest, force=args.force)}")


def _add_slurm_profile(sub: argparse._SubParsersAction) -> None:
    slurm = sub.add_parser(
        "slurm-profile",
        help="write the user profile that `snakemake --profile slurm` reads (cluster specifics)",
    )
    slurm.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    slurm.add_argument("--account", help="SLURM account (default: submit without one)")
    slurm.add_argument("--jobs", type=int, default=100, help="jobs queued at once")
    slurm.add_argument(
        "--retries", type=int, default=2, help="resubmissions of a killed job (it resumes)"
    )
    slurm.add_argument(
        "--status-command",
        choices=("sacct", "squeue"),
        help="how job states are polled; squeue where sacct has no accounting database",
    )
    slurm.add_argument("--init-seconds", type=int, help="seconds before the first status check")
    slurm.add_argument(
        "--dest", type=Path, help="profile folder (default: ~/.config/snakemake/slurm)"
    )
    slurm.add_argument("--force", action="store_true", help="replace an existing profile")
    slurm.set_defaults(func=_slurm_profile)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meddap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lora = sub.add_parser(
        "lora-params",
        help="count USLoRA parameters on the SD v1.x UNet architecture (no weights downloaded)",
    )
    lora.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    lora.set_defaults(func=_lora_params)
    check = sub.add_parser(
        "audit", help="verify an output's provenance back to the raw data and print its lineage"
    )
    check.add_argument("path", help="any workflow output (table, cell, weights, image set...)")
    check.add_argument("--root", default=".", help="the workflow's working directory")
    check.set_defaults(func=_audit)
    _add_slurm_profile(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `meddap` console script."""
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except MeddapError as err:
        sys.exit(f"meddap: {err}")


if __name__ == "__main__":
    main()
