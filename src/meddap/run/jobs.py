"""Run one meddap function as a Snakemake `script:` job, with logging and provenance."""

from __future__ import annotations

import logging
import os
import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from meddap.common.errors import MeddapError
from meddap.common.settings import Section
from meddap.run import provenance


def export_source_path(src: str) -> None:
    """Put `src` first on PYTHONPATH so every job imports this checkout's meddap."""
    rest = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, rest] if rest else [src])


def _named(namedlist: Any) -> dict[str, Any]:
    return dict(namedlist.items())


def _as_paths(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, Iterable) else [str(value)]


def _input_paths(all_inputs: Any, named: dict[str, Any]) -> dict[str, list[str]]:
    """Named inputs by name; unnamed ones (dependencies the function does not read) as 'other'."""
    paths = {name: _as_paths(value) for name, value in named.items()}
    seen = {p for group in paths.values() for p in group}
    other = [str(p) for p in all_inputs if str(p) not in seen]
    return {**paths, "other": other} if other else paths


def typed_params(func: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """`params` with each config section turned into the settings class `func` annotates it with."""
    hints = typing.get_type_hints(func)
    typed = {}
    for name, value in params.items():
        kind = hints.get(name)
        section = isinstance(kind, type) and issubclass(kind, Section)
        typed[name] = kind.from_params(value) if section else value
    return typed


def _setup_logging(log_files: list[str]) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(f, mode="w") for f in log_files]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers, force=True
    )


def _set_threads(threads: int) -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, threads))


def run(smk: Any, func: Callable[..., Any]) -> None:
    """Call `func(**inputs, **outputs, **params)` for job `smk`, then record its provenance.

    Input, output and param names of the rule are the keyword names of `func`; a param that
    `func` annotates with a settings class (`meddap.common.settings`) arrives as that class.
    A `MeddapError` ends the job with its one-sentence message and no traceback.
    """
    _setup_logging(list(smk.log))
    _set_threads(smk.threads)
    inputs, outputs, params = _named(smk.input), _named(smk.output), _named(smk.params)
    started = provenance.now()
    try:
        func(**inputs, **outputs, **typed_params(func, params))
    except MeddapError as err:
        logging.getLogger("meddap").error("%s", err)
        sys.exit(f"meddap: {err}")
    record = provenance.build_record(
        rule=smk.rule,
        inputs=_input_paths(smk.input, inputs),
        outputs=[p for value in outputs.values() for p in _as_paths(value)],
        params=params,
        wildcards=_named(smk.wildcards),
        started=started,
        ended=provenance.now(),
    )
    provenance.write_records(record)
