"""The rule/job contract: each rule passes exactly the keywords its script's function takes.

`meddap.run.launch.main` calls `func(**named inputs, **outputs, **params)`, so a renamed key on
either side used to fail only when that job ran. Here the rules come from Snakemake's own parser
(the Snakefile at the repo root, default config), the function from the script's AST
(`launch.main(snakemake, "meddap.x:f")`), its keywords from `inspect.signature`.
Unnamed inputs are dependencies the function does not read; `log` is not passed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RuleKeys:
    """What one `script:` rule passes its job: named inputs, outputs and params, by name."""

    name: str
    script: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...]


def load_rules(snakefile: Path, workdir: Path) -> list[RuleKeys]:
    """Every rule with a `script:` of `snakefile`, parsed by Snakemake (no DAG is built).

    Parsing runs the Snakefile, which puts paths on sys.path and PYTHONPATH and writes
    .snakemake/ into the working directory: `workdir` takes that, the rest is undone.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    saved_path, saved_env, saved_cwd = list(sys.path), os.environ.get("PYTHONPATH"), os.getcwd()
    try:
        os.chdir(workdir)
        with SnakemakeApi(OutputSettings()) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(), snakefile=snakefile)
            workflow = workflow_api._workflow  # the parsed Workflow (no public accessor in 9.x)
            return [
                RuleKeys(
                    name=rule.name,
                    script=Path(str(rule.basedir)) / rule.script,
                    inputs=tuple(rule.input.keys()),
                    outputs=tuple(rule.output.keys()),
                    params=tuple(rule.params.keys()),
                )
                for rule in workflow.rules
                if rule.script
            ]
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_env


def job_function(script: Path) -> Callable[..., Any]:
    """The function a `launch.main(snakemake, "module:function")` script runs."""
    tree = ast.parse(script.read_text(), filename=str(script))
    targets = [
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "main"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "launch"
        and len(node.args) == 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ]
    if len(targets) != 1 or targets[0].count(":") != 1:
        raise AssertionError(
            f'{script.name}: expected one `launch.main(snakemake, "module:function")`, '
            f"found {targets}"
        )
    module, name = targets[0].split(":")
    return getattr(importlib.import_module(module), name)


def keywords(func: Callable[..., Any]) -> set[str] | None:
    """The names `func` can take as keywords; None when it takes **kwargs (anything)."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = inspect.signature(func).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in kinds}


def mismatch(rule: RuleKeys) -> str | None:
    """One line naming what differs between `rule` and its job function, or None."""
    try:
        func = job_function(rule.script)
    except (AssertionError, ImportError, AttributeError, SyntaxError) as err:
        return f"rule {rule.name}: {err}"
    where = f"rule {rule.name} -> {func.__module__}.{func.__qualname__}"
    groups = {"input": rule.inputs, "output": rule.outputs, "params": rule.params}
    passed = [name for names in groups.values() for name in names]
    clashes = sorted({name for name in passed if passed.count(name) > 1})
    if clashes:
        owners = {n: [g for g, names in groups.items() if n in names] for n in clashes}
        return f"{where}: names passed twice: {owners}"
    taken = keywords(func)
    if taken is None:
        return f"{where}: takes **kwargs, so a renamed key would go unnoticed"
    extra, missing = sorted(set(passed) - taken), sorted(taken - set(passed))
    if not extra and not missing:
        return None
    parts = [f"the rule passes {extra} that the function does not take"] if extra else []
    parts += [f"the function takes {missing} that the rule does not pass"] if missing else []
    return f"{where}: " + "; ".join(parts)


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[RuleKeys]:
    return load_rules(REPO / "Snakefile", tmp_path_factory.mktemp("parse"))


def test_every_rule_passes_exactly_its_job_functions_keywords(rules: list[RuleKeys]) -> None:
    problems = [line for line in map(mismatch, rules) if line]
    assert not problems, "rule/job keyword mismatch:\n" + "\n".join(problems)


def test_every_script_is_some_rules_and_every_job_rule_has_one(rules: list[RuleKeys]) -> None:
    scripts = {path.resolve() for path in (REPO / "workflow" / "scripts").glob("*.py")}
    used = {rule.script.resolve() for rule in rules}
    assert used <= scripts, sorted(str(p) for p in used - scripts)
    assert scripts <= used, f"scripts no rule runs: {sorted(p.name for p in scripts - used)}"
    assert len(rules) >= 20  # the parse saw the whole workflow, not an empty one


# --- the check itself, on a one-rule workflow --------------------------------------------

PROBE = '''
def job(*, data, out, size, seed=0):
    """A stand-in job."""
'''
SCRIPT = """from meddap.run import launch

launch.main(snakemake, "probe_jobs:job")  # noqa: F821
"""
SNAKEFILE = """
rule probe:
    input:
        "unread.txt",
        {inputs}
    output:
        out="out.txt",
    params:
        {params}
    log:
        "probe.log",
    script:
        "probe.py"


rule all:
    input:
        "out.txt",
"""


@pytest.fixture()
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str | None]]:
    """mismatch() of a one-rule workflow whose rule has the given input and params lines."""
    (tmp_path / "probe_jobs.py").write_text(PROBE)
    (tmp_path / "probe.py").write_text(SCRIPT)
    monkeypatch.syspath_prepend(str(tmp_path))

    def check(inputs: str, params: str) -> str | None:
        snakefile = tmp_path / "Snakefile"
        snakefile.write_text(SNAKEFILE.format(inputs=inputs, params=params))
        (rule,) = load_rules(snakefile, tmp_path)
        return mismatch(rule)

    yield check
    sys.modules.pop("probe_jobs", None)


def test_the_check_passes_a_matching_rule_and_names_a_renamed_key(probe: Callable) -> None:
    assert probe('data="in.txt",', "size=3,\n        seed=1,") is None
    message = probe('dataset="in.txt",', "size=3,\n        seed=1,")
    assert message is not None and message.startswith("rule probe -> probe_jobs.job:")
    assert "passes ['dataset']" in message and "takes ['data']" in message
    message = probe('data="in.txt",', "size=3,")  # a keyword with a default must be passed too
    assert message is not None and "takes ['seed']" in message
    message = probe('data="in.txt",', "size=3,\n        seed=1,\n        out=2,")
    assert message is not None and "passed twice" in message and "'out'" in message
