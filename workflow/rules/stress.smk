# Shortcut stress tests (docs/evaluation-and-verdicts.md, "Stress tests"): every model's test images under
# the stain probes, and every model on another lab's images (config external:).


rule stain_probe_images:
    input:
        manifest=SPLIT_MANIFEST,
    output:
        table=f"{PROBED_DIR}/probed.tsv",
        folder=directory(f"{PROBED_DIR}/images"),
    log:
        "logs/stain_probe_images/{task}/fold{fold}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        seed=config["seed"],
    script:
        "../scripts/stain_probe_images.py"


rule stain_probe:
    input:
        model=rules.train.output.model,
        manifest=SPLIT_MANIFEST,
        probed=rules.stain_probe_images.output.table,
    output:
        predictions=f"{EVALUATION_DIR}/stain_probes.tsv",
        metrics=f"{EVALUATION_DIR}/stain_probes.json",
    log:
        f"logs/stain_probe/{MODEL_FOLD}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        image_size=backbone_image_size,
        seed=config["seed"],
    script:
        "../scripts/stain_probe.py"


use rule stain_probe as stain_probe_colour_baseline with:
    input:
        manifest=SPLIT_MANIFEST,
        probed=rules.stain_probe_images.output.table,
    output:
        predictions=f"{BASELINE_EVALUATION_DIR}/stain_probes.tsv",
        metrics=f"{BASELINE_EVALUATION_DIR}/stain_probes.json",
    log:
        "logs/stain_probe/{task}/colour_baseline/fold{fold}.log",
    params:
        classes=task_classes,
        image_size=None,
        seed=config["seed"],


rule stain_probe_summary:
    input:
        predictions=stain_probe_predictions,
    output:
        table=STAIN_PROBE_TABLE,
    log:
        "logs/stain_probe_summary/{task}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        predictions=stain_probe_prediction_table,
        bootstrap=config["evaluate"]["bootstrap_samples"],
        seed=config["seed"],
    script:
        "../scripts/stain_probe_summary.py"
