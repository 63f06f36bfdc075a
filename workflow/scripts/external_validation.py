from alldag.external import ExternalOutputs, score_external
from alldag.rulelog import run_rule
from alldag.stress import ScoringSettings

inp, out = snakemake.input, snakemake.output
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: score_external(
        models=list(inp.models) or [None] * len(inp.manifests),  # none: the colour baseline, fitted per fold
        manifests=list(inp.manifests),
        images=inp.images,
        name=snakemake.wildcards.external,
        settings=ScoringSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=ExternalOutputs(out.predictions, out.metrics, list(out.fold_metrics)),
    ),
)
