from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.stress import ProbeScoreOutputs, ScoringSettings, score_stain_probes

inp = snakemake.input
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: score_stain_probes(
        model=inp.model if "model" in inp.keys() else None,  # noqa: SIM118 (a Namedlist: `in` tests values)
        manifest=inp.manifest,
        probed=inp.probed,
        settings=ScoringSettings.from_params(snakemake.params, snakemake.wildcards),
        outputs=named_files(ProbeScoreOutputs, snakemake.output),
        threads=snakemake.threads,
    ),
)
