from alldag.evaluate import EvaluationOutputs, EvaluationSettings, evaluate_model
from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.stress import ProbeScoreOutputs

out = snakemake.output
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: evaluate_model(
        model=snakemake.input.model,
        manifest=snakemake.input.manifest,
        settings=EvaluationSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=named_files(EvaluationOutputs, out),
        probed=snakemake.input.probed,
        probe_outputs=named_files(ProbeScoreOutputs, out, predictions="stain_predictions", metrics="stain_metrics"),
    ),
)
