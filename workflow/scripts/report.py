import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.report import build_report_from_lists  # noqa: E402

inp, p, out = snakemake.input, snakemake.params, snakemake.output
kinds = ("metrics", "history", "curves", "confusion", "roc", "reliability", "explanation", "explanation_summary", "run")
comparisons = {
    "comparison": list(inp.comparison),
    "paired": list(inp.paired),
    "figure": list(inp.comparison_figure),
}
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: build_report_from_lists(
        inp.provenance,
        inp.audit,
        dict(zip(p.tasks, inp.leakage)),
        list(inp.manifests),
        inp.augmentation[0],
        dict(zip(p.tasks, inp.previews)),
        p.tasks,
        p.backbones,
        p.folds,
        {k: list(getattr(inp, k)) for k in kinds},
        comparisons,
        {**p.train, "seed": p.seed, "bootstrap": p.bootstrap},
        out.report,
        out.table,
        out.summary,
    ),
)
