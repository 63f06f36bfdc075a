from alldag.external import summarise_external
from alldag.rulelog import run_rule
from alldag.stress import SummarySettings

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: summarise_external(
        scored=dict(p.scored),
        in_domain={model: dict(folds) for model, folds in dict(p.in_domain).items()},
        settings=SummarySettings.from_params(p),
        output=snakemake.output.table,
    ),
)
