"""The `meddap` command: helpers around the workflow (the workflow itself runs with snakemake)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from meddap.errors import MeddapError


def _lora_params(args: argparse.Namespace) -> None:
    from meddap.lora_params import lora_params_table

    print(lora_params_table(tuple(args.ranks)))


def _audit(args: argparse.Namespace) -> None:
    from meddap.audit import audit

    print(audit(args.path, args.root))


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
