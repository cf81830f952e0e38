"""The `meddap` command: helpers around the workflow (the workflow itself runs with snakemake)."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from meddap.common.atomic import check_writable
from meddap.common.errors import MeddapError, crash_sentence


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


def _check_model_output(output: str, force: bool) -> None:
    """Stop before training unless model folder `output` can be written: not a file, not an
    existing folder (a shipped model included) without --force, in a writable place."""
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise MeddapError(f"--output {output} is a file; expected a folder for the model")
    if path.exists() and not force:
        raise MeddapError(f"--output {output} exists; pass --force to replace it")
    check_writable(path.parent, f"--output {output}: folder")


def _pretrain_base(args: argparse.Namespace) -> None:
    from meddap.diffusion.pretrain import pretrain_base
    from meddap.diffusion.pretrain_config import PretrainConfig

    _check_model_output(args.output, args.force)
    check_writable(args.checkpoint_dir, "--checkpoint-dir")
    config = PretrainConfig(
        patients=args.patients,
        image_size=args.image_size,
        vae_steps=args.vae_steps,
        unet_steps=args.unet_steps,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    )
    done = pretrain_base(
        output=args.output,
        config=config,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        command=args.invocation,
    )
    losses = ", ".join(f"{phase} {loss:.4f}" for phase, loss in done["losses"].items())
    print(
        f"wrote {args.output}: {done['images']} corpus images, "
        f"{config.vae_steps} + {config.unet_steps} steps in {done['seconds']:.0f} s "
        f"(final losses {losses})"
    )


def _add_pretrain_base(sub: argparse._SubParsersAction) -> None:
    from meddap.diffusion.pretrain_config import DEFAULT_CHECKPOINTS, DEFAULT_OUTPUT, PretrainConfig

    defaults = PretrainConfig()
    base = sub.add_parser(
        "pretrain-base",
        help="pretrain the embedded Stable Diffusion on the phantom corpus (~25 min, 2 CPU cores)",
        description=(
            "Pretrain a small Stable Diffusion (VAE, then UNet and CLIP text encoder jointly) "
            "on a phantom corpus disjoint from the workflow's datasets, with MEDDAP captions "
            "whose adjectives are measured on each image. Writes a diffusers folder with "
            "meddap_build.json (command, config, code version, sha256 of every file), which "
            "loading verifies. Deterministic on CPU: the same command rebuilds the same bytes "
            "on one machine."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    base.add_argument("--output", default=DEFAULT_OUTPUT, help="diffusers folder to write")
    base.add_argument(
        "--patients", type=int, default=defaults.patients, help="phantom patients of the corpus"
    )
    base.add_argument(
        "--image-size", type=int, default=defaults.image_size, help="training resolution (px)"
    )
    base.add_argument("--vae-steps", type=int, default=defaults.vae_steps, help="VAE steps")
    base.add_argument(
        "--unet-steps", type=int, default=defaults.unet_steps, help="UNet + text encoder steps"
    )
    base.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step")
    base.add_argument("--seed", type=int, default=defaults.seed, help="initialisation seed")
    base.add_argument(
        "--checkpoint-dir",
        default=DEFAULT_CHECKPOINTS,
        help="where checkpoint.pt (until success) and train_log.csv go",
    )
    base.add_argument(
        "--checkpoint-every",
        type=int,
        default=defaults.checkpoint_every,
        help="steps between checkpoints",
    )
    base.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint of a killed run with the same settings",
    )
    _add_force(base)
    base.set_defaults(func=_pretrain_base)


def _pretrain_controlnet(args: argparse.Namespace) -> None:
    from meddap.pairs.pretrain import ControlNetPretrainConfig, pretrain_controlnet

    _check_model_output(args.output, args.force)
    config = ControlNetPretrainConfig(
        condition=args.condition,
        patients=args.patients,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        resolution=args.resolution,
    )
    done = pretrain_controlnet(
        base_model=args.base_model, output=args.output, config=config, command=args.invocation
    )
    print(
        f"wrote {args.output}: {config.condition} ControlNet on {done['images']} lesion images, "
        f"{config.steps} steps in {done['seconds']:.0f} s ({done['seconds_per_step']:.2f} s/step, "
        f"final loss {done['loss']:.4f})"
    )


def _add_pretrain_controlnet(sub: argparse._SubParsersAction) -> None:
    from meddap.pairs.pretrain import (
        BASE_MODEL,
        CONDITIONS,
        DEFAULT_OUTPUT,
        ControlNetPretrainConfig,
    )

    defaults = ControlNetPretrainConfig()
    net = sub.add_parser(
        "pretrain-controlnet",
        help="pretrain the embedded ControlNet on the phantom corpus's lesions (2 CPU cores)",
        description=(
            "Pretrain a ControlNet on the frozen embedded Stable Diffusion, on the lesion "
            "images of the phantom corpus of pretrain-base with their mask (or edge) "
            "conditioning images and class prompts. Writes a diffusers ControlNet folder with "
            "meddap_build.json (command, settings, base model digest, code version, sha256 of "
            "every file). Deterministic on CPU: the same command rebuilds the same bytes on "
            "one machine."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net.add_argument("--base-model", default=BASE_MODEL, help="frozen diffusers folder")
    net.add_argument("--output", default=DEFAULT_OUTPUT, help="ControlNet folder to write")
    net.add_argument(
        "--condition", choices=CONDITIONS, default=defaults.condition, help="conditioning image"
    )
    net.add_argument(
        "--resolution", type=int, default=defaults.resolution, help="training resolution (px)"
    )
    net.add_argument("--steps", type=int, default=defaults.steps, help="training steps")
    net.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step")
    net.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="AdamW learning rate"
    )
    net.add_argument("--seed", type=int, default=defaults.seed, help="initialisation seed")
    net.add_argument(
        "--patients", type=int, default=defaults.patients, help="phantom patients of the corpus"
    )
    _add_force(net)
    net.set_defaults(func=_pretrain_controlnet)


def _add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --output folder (the build record omits this flag)",
    )


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
    check.add_argument(
        "--root",
        help="the workflow's working directory (default: found from the output's record)",
    )
    check.set_defaults(func=_audit)
    _add_slurm_profile(sub)
    _add_pretrain_base(sub)
    _add_pretrain_controlnet(sub)
    return parser


def _crash_log(command: str) -> Path:
    """A new file for the traceback of an unexpected error (the user's log folder, else /tmp)."""
    from platformdirs import user_log_dir

    name = f"{command}-{time.strftime('%Y%m%dT%H%M%S')}-"
    try:
        folder = Path(user_log_dir("meddap"))
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkstemp(prefix=name, suffix=".log", dir=folder)[1])
    except OSError:
        return Path(tempfile.mkstemp(prefix=f"meddap-{name}", suffix=".log")[1])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `meddap` console script."""
    args = _parser().parse_args(argv)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--force"]
    args.invocation = shlex.join(["meddap", *given])  # what builds the output, for its record
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except MeddapError as err:
        sys.exit(f"meddap: {err}")
    except Exception as err:  # the last resort: one sentence here, the traceback in a log
        log = _crash_log(args.command)
        sys.exit(f"meddap: {crash_sentence(err, f'meddap {args.command}', log)}")


if __name__ == "__main__":
    main()
