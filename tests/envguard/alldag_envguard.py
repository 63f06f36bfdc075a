"""Make a Python process import like a rule's conda env: only that env's distributions are importable.

The env's closure is its env file's pip pins plus everything they declare, read from the installed
metadata (markers and extras evaluated). An import hook admits a top-level module only if the
standard library, the alldag package (installed into every env by its post-deploy script),
snakemake (Snakemake's script preamble puts its own on the path) or a distribution of the closure
provides it, and refuses anything else with a ModuleNotFoundError that names the module, its
distribution and the env file. Used two ways: tests/unit/test_env_files.py imports each rule script's imports
under it, and sitecustomize.py beside this file guards every job of the test suite's DAG runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as md
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "workflow" / "rules"
ALWAYS = {"alldag", "snakemake"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_pip_lines(env_file: Path) -> list[str]:
    import yaml

    env = yaml.safe_load(env_file.read_text())
    return [line for dep in env["dependencies"] if isinstance(dep, dict) for line in dep["pip"] or []]


def closure(env_file: Path) -> set[str]:
    """Normalised names of the env's pip requirements and everything they declare, as installed here."""
    return closure_of(env_pip_lines(env_file))


def closure_of(lines: list[str]) -> set[str]:
    """Normalised names of the requirements and everything they declare, as installed here."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    seen: set[tuple[str, frozenset]] = set()
    queue = [(r.name, frozenset(r.extras)) for r in map(Requirement, lines)]
    while queue:
        name, extras = queue.pop()
        if (norm(name), extras) in seen:
            continue
        seen.add((norm(name), extras))
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:  # e.g. tensorflow[and-cuda]'s CUDA wheels on a CPU machine
            continue
        markers = [{**default_environment(), "extra": e} for e in extras | {""}]
        for req in map(Requirement, requires):
            if req.marker is None or any(req.marker.evaluate(m) for m in markers):
                queue.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def rule_envs() -> dict[str, tuple[str, list[Path]]]:
    """{rule: (script file name, env files)} from workflow/rules/**/*.smk.

    A `conda: train_env()` rule lists both training envs (CPU and GPU), chosen by train.require_gpu; a
    rule made by `use rule <parent> as <name> with:` has its parent's script and envs.
    """
    rules, inherited = {}, {}
    for smk in sorted(RULES.rglob("*.smk")):
        for block in re.split(r"^(?=rule |use rule )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"(?:use )?rule (\w+)", block).group(1)
            parent = re.match(r"use rule (\w+) as (\w+)", block)
            if parent:
                inherited[parent.group(2)] = parent.group(1)
                continue
            script = re.search(r"^    script:\n\s+(?:workflow_script\()?\"([^\"]+)\"", block, re.M)
            conda = re.search(r"^    conda:\n\s+(\S+)", block, re.M)
            if not script or not conda:
                continue
            target = conda.group(1).strip('"')
            if target == "train_env()":
                envs = [REPO / "envs" / "train.yaml", REPO / "envs" / "train-gpu.yaml"]
            else:
                envs = [(smk.parent / target).resolve()]
            rules[name] = (Path(script.group(1)).name, envs)
    return {**rules, **{child: rules[parent] for child, parent in inherited.items() if parent in rules}}


class EnvGuard(importlib.abc.MetaPathFinder):
    """Refuse top-level modules that no distribution of the env provides."""

    def __init__(self, env_file: Path, who: str):
        self.env_file, self.who = env_file, who
        self.allowed = closure(env_file)
        self.providers = {m: {norm(d) for d in ds} for m, ds in md.packages_distributions().items()}
        # Snakemake's script preamble imports snakemake from the host's paths, and it imports its own needs
        snakemake_dists = closure_of(["snakemake"])
        self.host_modules = {m for m, ds in self.providers.items() if ds & snakemake_dists} | {"snakemake"}

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if fullname != top or top in sys.stdlib_module_names or top in sys.builtin_module_names or top in ALWAYS:
            return None
        dists = self.providers.get(top, set())
        if not dists or dists & self.allowed:
            return None  # a module of the env, or one not installed at all (its import fails as it would there)
        if _importer() in self.host_modules:
            return None
        message = (
            f"{self.who} imports {top} ({', '.join(sorted(dists)) or 'no distribution'}), which "
            f"envs/{self.env_file.name} does not provide: add it to [tool.alldag.envs] in pyproject.toml "
            "and run `make envs`"
        )
        raise ModuleNotFoundError(message, name=top)


def _importer() -> str:
    """Top-level name of the module whose code runs the import being resolved."""
    frame = sys._getframe(2)
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen") or frame.f_code.co_filename == __file__
    ):
        frame = frame.f_back
    return (frame.f_globals.get("__name__") or "").partition(".")[0] if frame is not None else ""


def install(env_file: Path, who: str) -> EnvGuard:
    """Guard this process's imports from now on; modules loaded while reading the env (yaml,
    packaging) are dropped so the rule's own imports of them pass the guard too."""
    guard = EnvGuard(env_file, who)
    for name in [
        m
        for m in sys.modules
        if m.partition(".")[0] in guard.providers and m.partition(".")[0] not in ALWAYS | set(sys.stdlib_module_names)
    ]:
        del sys.modules[name]  # third-party modules only: __main__, the stdlib and this module stay
    sys.meta_path.insert(0, guard)
    return guard


def guard_snakemake_job(argv: list[str]) -> None:
    """In a Snakemake script job (`python .snakemake/scripts/tmpXXXX.<script>.py`), guard its rule's env."""
    job_script = next((a for a in argv if "/.snakemake/scripts/" in a and a.endswith(".py")), None)
    if job_script is None:
        return
    script = Path(job_script).name.split(".", 1)[1]
    rules = sorted((rule, envs[0]) for rule, (name, envs) in rule_envs().items() if name == script)
    if rules:
        env_file = rules[0][1]
        install(env_file, f"rule {'/'.join(r for r, _ in rules)} ({script})")


def _optional(tree) -> set[int]:
    """ids of the nodes inside a try that catches ImportError: optional imports by design."""
    import ast

    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is not None and re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type))
            for h in node.handlers
        ):
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return optional


def imports_in(path: Path) -> list[str]:
    """Every module path imports, at module level and inside functions, minus optional imports."""
    import ast

    tree = ast.parse(path.read_text())
    skip = _optional(tree)
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    return list(dict.fromkeys(names))


def check_script(script: Path, guard: EnvGuard, who: str) -> list[str]:
    """Import, under the env's guard, what script imports and what the alldag modules it names import
    (inside functions too: the lazy imports of heavy libraries). Returns one line per refused module."""
    import importlib

    guard.who = who
    direct = imports_in(script)
    modules = direct + [
        m
        for name in direct
        if name.startswith("alldag")
        for m in imports_in(Path(importlib.util.find_spec(name).origin))
    ]
    refused = []
    for name in dict.fromkeys(modules):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            refused.append(str(exc) if "does not provide" in str(exc) else f"{who} imports {name}: {exc}")
    return list(dict.fromkeys(refused))


def check_env(env_file: Path) -> list[str]:
    """check_script for every rule whose env is env_file (one process per env: what one rule
    imported, the next may reuse, as both would find it in that env)."""
    scripts = {}
    for rule, (script, envs) in rule_envs().items():
        if env_file.resolve() in [e.resolve() for e in envs]:
            scripts.setdefault(script, []).append(rule)
    guard = install(env_file, "")
    problems = []
    for script, rules in sorted(scripts.items()):
        problems += check_script(REPO / "workflow" / "scripts" / script, guard, f"rule {'/'.join(rules)} ({script})")
    return problems


if __name__ == "__main__":  # python alldag_envguard.py ENV_FILE [SCRIPT]: print refusals, exit 1 if any
    env = Path(sys.argv[1])
    problems = (
        check_script(Path(sys.argv[2]), install(env, ""), Path(sys.argv[2]).name)
        if len(sys.argv) > 2
        else check_env(env)
    )
    print("\n".join(problems))
    sys.exit(1 if problems else 0)
