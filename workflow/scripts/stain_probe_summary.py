from alldag.rulelog import run_rule
from alldag.stress import SummarySettings, summarise_stain_probes

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: summarise_stain_probes(
        predictions=dict(snakemake.params.predictions),
        settings=SummarySettings.from_params(snakemake.params),
        output=snakemake.output.table,
    ),
)
