# Tracking apart from computing: these jobs log the files the computing jobs wrote (see alldag.track).
# They are light and talk to the tracking server, which compute nodes may not reach: they run where
# snakemake runs.
localrules:
    track,
    track_comparison,


rule track:
    input:
        unpack(track_inputs),
    output:
        tracked=TRACKED_JSON,
    log:
        f"logs/track/{MODEL_FOLD}.log",
    wildcard_constraints:
        backbone="|".join(PLAN.compared_models),
    conda:
        "../../envs/train.yaml"
    params:
        tracking=PLAN.tracking,
        classes=task_classes,
        external=external_track_table,
    script:
        "../scripts/track.py"


rule track_comparison:
    input:
        comparison=rules.compare.output.comparison,
        paired=rules.compare.output.paired,
        figure=rules.compare.output.figure,
        provenance=PROVENANCE,
        runs=flat_of(comparison_tracked_table),
    output:
        tracked=COMPARISON_TRACKED_JSON,
    log:
        "logs/track/{task}/comparison.log",
    conda:
        "../../envs/train.yaml"
    params:
        runs=comparison_tracked_table,
        tracking=PLAN.tracking,
    script:
        "../scripts/track_comparison.py"
