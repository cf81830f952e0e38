"""Packaging: the conda env matches pyproject, and every third-party import in src/ is declared."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"meddap"}
# Import names whose distribution is named differently (the rest: the import name itself).
DISTRIBUTIONS = {
    "PIL": "pillow",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "pytorch_grad_cam": "grad-cam",
    "torch_fidelity": "torch-fidelity",
}
OPTIONAL = (ImportError, ModuleNotFoundError)
HEAVY = ("torch", "monai", "diffusers", "torchmetrics")
# Imported by every Snakemake process (each SLURM job re-reads the workflow) or by a job that
# runs once per segmenter: seconds of torch/MONAI start-up each would add up over a grid.
LIGHT_IMPORTERS = (
    "Snakefile",
    "workflow/rules/common.smk",
    "workflow/scripts/segmenter_metrics.py",
)


def _dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"]


def _env_pip() -> list[str]:
    env = yaml.safe_load((REPO / "envs" / "meddap.yaml").read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return pip


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group())


def _guarded(tree: ast.Module) -> set[int]:
    """ids of import nodes inside a `try:` that catches ImportError (an optional import)."""
    guarded = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = [h.type for h in node.handlers]
        names = {n.id for t in caught if t for n in ast.walk(t) if isinstance(n, ast.Name)}
        if names & {e.__name__ for e in OPTIONAL}:
            guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return guarded


def third_party_imports(root: Path) -> dict[str, list[str]]:
    """Top-level modules imported unconditionally under `root` that are neither stdlib nor ours,
    with the files importing each."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, []).append(str(path.relative_to(root)))
    return found


def test_conda_env_pip_list_is_pyprojects_dependencies_in_order() -> None:
    """The same requirement strings in the same order, so a diff of the two reads line by line."""
    env, declared = _env_pip(), _dependencies()
    only_env = [r for r in env if r not in declared]
    only_pyproject = [r for r in declared if r not in env]
    assert not only_env and not only_pyproject, (
        f"envs/meddap.yaml only: {only_env}; pyproject.toml only: {only_pyproject}"
    )
    assert env == declared, "envs/meddap.yaml lists pyproject's dependencies in another order"


def test_every_third_party_import_in_src_is_a_declared_dependency() -> None:
    """Declared but not imported is allowed (monai); optional imports (try/except ImportError,
    such as kaggle) need not be declared."""
    declared = {requirement_name(r) for r in _dependencies()}
    imports = third_party_imports(REPO / "src")
    assert "requests" in imports  # the scan sees src/ (meddap.data.download uses requests)
    undeclared = {
        name: f"{normalise(DISTRIBUTIONS.get(name, name))} (imported by src/{files[0]})"
        for name, files in sorted(imports.items())
        if normalise(DISTRIBUTIONS.get(name, name)) not in declared
    }
    assert not undeclared, (
        f"imports without a [project] dependency: {undeclared}; declare the distribution in "
        "pyproject.toml and envs/meddap.yaml, or name it in DISTRIBUTIONS if it differs"
    )


def test_import_scan_skips_optional_imports_and_maps_distribution_names(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "import os\nimport PIL.Image\nfrom skimage import io\nfrom . import sibling\n"
        "try:\n    import kaggle\nexcept ImportError:\n    kaggle = None\n"
        "def f():\n    from meddap.common import errors\n    import torch_fidelity\n"
    )
    found = third_party_imports(tmp_path)
    assert sorted(found) == ["PIL", "skimage", "torch_fidelity"]
    assert normalise(DISTRIBUTIONS["torch_fidelity"]) == requirement_name("torch-fidelity>=0.3")
    assert requirement_name("Scikit_Image==0.24.*") == "scikit-image"


def test_planning_and_per_segmenter_summaries_import_no_deep_learning_library() -> None:
    for name in LIGHT_IMPORTERS:
        lines = (REPO / name).read_text().splitlines()
        imports = [line for line in lines if re.match(r"(from|import) ", line)]
        probe = "\n".join(
            [*imports, "import sys", f"print(sorted(set({HEAVY}) & set(sys.modules)))"]
        )
        run = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "[]", f"{name} imports {run.stdout.strip()}"
