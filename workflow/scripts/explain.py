from alldag.explain import ExplainOutputs, ExplainSettings, explain_model
from alldag.jobs import named_files
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: explain_model(
        model=snakemake.input.model,
        manifest=snakemake.input.manifest,
        settings=ExplainSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=named_files(ExplainOutputs, snakemake.output),
    ),
)
