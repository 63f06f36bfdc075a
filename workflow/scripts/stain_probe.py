from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.stress import ProbeScoreOutputs, ScoringSettings, score_stain_probes

out = snakemake.output
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: score_stain_probes(
        model=None,  # the colour baseline refitted (a trained model's evaluate job scores its own probes)
        manifest=snakemake.input.manifest,
        probed=snakemake.input.probed,
        settings=ScoringSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=named_files(ProbeScoreOutputs, out, predictions="stain_predictions", metrics="stain_metrics"),
        threads=snakemake.threads,
    ),
)
