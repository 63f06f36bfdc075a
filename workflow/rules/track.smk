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
        tracked=f"{TRACKED_DIR}/tracked.json",
    log:
        f"logs/track/{MODEL_FOLD}.log",
    wildcard_constraints:
        backbone="|".join(COMPARED_MODELS),
    conda:
        "../../envs/train.yaml"
    params:
        tracking=tracking_params(),
        classes=task_classes,
        image_size=track_image_size,
        external=external_track_table,
    script:
        "../scripts/track.py"


rule track_comparison:
    input:
        comparison=rules.compare.output.comparison,
        paired=rules.compare.output.paired,
        figure=rules.compare.output.figure,
        provenance=PROVENANCE,
        runs=comparison_tracked_runs,
    output:
        tracked="results/mlflow/{task}/comparison_tracked.json",
    log:
        "logs/track/{task}/comparison.log",
    conda:
        "../../envs/train.yaml"
    params:
        runs=comparison_tracked_table,
        tracking=tracking_params(),
    script:
        "../scripts/track_comparison.py"
