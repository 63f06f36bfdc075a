from alldag.evaluate import EvaluationOutputs, EvaluationSettings
from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.stress import ProbeScoreOutputs, evaluate_with_probes

out = snakemake.output
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: evaluate_with_probes(
        model=snakemake.input.model,
        manifest=snakemake.input.manifest,
        probed=snakemake.input.probed,
        settings=EvaluationSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=named_files(EvaluationOutputs, out),
        probe_outputs=named_files(ProbeScoreOutputs, out, predictions="stain_predictions", metrics="stain_metrics"),
    ),
)
