from alldag.compare import ComparisonOutputs, ComparisonSettings, compare_models
from alldag.jobs import named_files
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: compare_models(
        predictions={m: dict(by_fold) for m, by_fold in snakemake.params.predictions.items()},
        settings=ComparisonSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=named_files(ComparisonOutputs, snakemake.output),
        image_level=list(snakemake.input.image_level),
        by_grouping=list(snakemake.input.by_grouping),
    ),
)
