"""Run one meddap function as a Snakemake `script:` job, with logging and provenance."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from meddap.common.errors import MeddapError, crash_sentence
from meddap.common.settings import Section
from meddap.run import provenance
from meddap.run.usage import Usage, plus, process_usage


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
    for f in log_files:
        Path(f).write_text("")  # a fresh log, appended to (a crash's traceback lands at its end)
    handlers += [logging.FileHandler(f, mode="a") for f in log_files]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers, force=True
    )


def _set_threads(threads: int) -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, threads))


def _input_read(err: BaseException, inputs: list[str]) -> str | None:
    """The job input the failing code was reading, where the exception shows it: an OSError's
    file, else a local of the innermost frame that names an input or a file in an input folder."""
    frames = [frame for frame, _ in traceback.walk_tb(err.__traceback__)]
    values = [getattr(err, "filename", None)]
    values += [v for frame in reversed(frames) for v in frame.f_locals.values()]
    roots = [Path(os.path.abspath(p)) for p in inputs]
    for value in values:
        if isinstance(value, str | os.PathLike) and str(value):
            path = Path(os.path.abspath(value))
            if any(path.is_relative_to(root) for root in roots):
                return str(value)
    return None


def _crash(smk: Any, err: Exception) -> str:
    """The one sentence for an unexpected exception of job `smk`; its traceback goes to the log."""
    log = smk.log[0] if len(smk.log) else tempfile.mkstemp(prefix=f"meddap-{smk.rule}-")[1]
    wildcards = ", ".join(f"{k}={v}" for k, v in _named(smk.wildcards).items())
    what = f"job {smk.rule}" + (f" ({wildcards})" if wildcards else "")
    reading = _input_read(err, [str(p) for p in smk.input])
    return crash_sentence(err, what + (f" reading {reading}" if reading else ""), log)


def run(smk: Any, func: Callable[..., Any], launcher: Usage | None = None) -> None:
    """Call `func(**inputs, **outputs, **params)` for job `smk`, then record its provenance.

    Input, output and param names of the rule are the keyword names of `func`; a param that
    `func` annotates with a settings class (`meddap.common.settings`) arrives as that class.
    A `MeddapError` ends the job with its one-sentence message and no traceback; any other
    exception with one sentence naming the job (and the input it read, if known) and its log,
    which holds the traceback. `launcher` is the usage of the process that handed the job to
    this one (`meddap.run.launch`), added to this process's in the record.
    """
    _setup_logging(list(smk.log))
    _set_threads(smk.threads)
    try:
        _call(smk, func, launcher)
        return
    except MeddapError as err:
        sentence = str(err)
    except Exception as err:  # the last resort: no job ends in a raw traceback
        sentence = _crash(smk, err)
    logging.getLogger("meddap").error("%s", sentence)
    sys.exit(f"meddap: {sentence}")


def _accounting(startup: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """A job's start-up and totals: its process's (interpreter, imports, Snakemake's script
    preamble), plus its launcher's where a job server forked it (the server's imports are in no
    job's record)."""
    return {
        "startup_seconds": startup["age_seconds"],
        "startup_cpu_seconds": startup["cpu_seconds"],
        "cpu_seconds": end["cpu_seconds"],
        "max_rss_mb": end["max_rss_mb"],
    }


def _call(smk: Any, func: Callable[..., Any], launcher: Usage | None) -> None:
    """Run `func` for job `smk` and record its provenance (an earlier run's records go first)."""
    inputs, outputs, params = _named(smk.input), _named(smk.output), _named(smk.params)
    written = [p for value in outputs.values() for p in _as_paths(value)]
    provenance.remove_records(written)
    started, startup = provenance.now(), plus(launcher, process_usage())
    func(**inputs, **outputs, **typed_params(func, params))
    missing = [p for p in written if not os.path.exists(p)]
    if missing:
        raise MeddapError(f"job {smk.rule} ended without writing its output {missing[0]}")
    record = provenance.build_record(
        rule=smk.rule,
        inputs=_input_paths(smk.input, inputs),
        outputs=written,
        params=params,
        wildcards=_named(smk.wildcards),
        started=started,
        ended=provenance.now(),
        process=_accounting(startup, plus(launcher, process_usage())),
    )
    provenance.write_records(record)
