# Shortcut stress tests (docs/evaluation-and-verdicts.md, "Stress tests"): every model's test images under
# the stain probes (a trained model's evaluate job scores them), and every model on another lab's images
# (config external:).


rule stain_probe_images:
    input:
        manifest=SPLIT_MANIFEST,
    output:
        table=PROBED_TABLE,
        folder=directory(f"{PROBED_DIR}/images"),
    log:
        "logs/stain_probe_images/{task}/fold{fold}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        seed=config["seed"],
    script:
        "../scripts/stain_probe_images.py"


rule stain_probe_colour_baseline:
    input:
        manifest=SPLIT_MANIFEST,
        probed=rules.stain_probe_images.output.table,
    output:
        stain_predictions=fill(STAIN_PROBE_PREDICTIONS, backbone=BASELINE_NAME),
        stain_metrics=fill(STAIN_PROBE_METRICS, backbone=BASELINE_NAME),
    log:
        "logs/stain_probe/{task}/colour_baseline/fold{fold}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        seed=config["seed"],
    script:
        "../scripts/stain_probe.py"


rule stain_probe_summary:
    input:
        predictions=flat_of(stain_probe_prediction_table),
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


rule external_synthetic:
    output:
        folder=directory(synthetic_folder("{external}")),
    log:
        "logs/external_synthetic/{external}.log",
    conda:
        "../../envs/data.yaml"
    params:
        spec=external_spec,
    script:
        "../scripts/external_synthetic.py"


rule external_audit:
    input:
        unpack(external_audit_inputs),
    output:
        images=EXTERNAL_IMAGES,
        quarantine=f"{EXTERNAL_DIR}/{QUARANTINE_TSV}",
        duplicates=f"{EXTERNAL_DIR}/{DUPLICATES_TSV}",
        summary=f"{EXTERNAL_DIR}/audit.json",
    log:
        "logs/external_audit/{external}.log",
    conda:
        "../../envs/data.yaml"
    params:
        classes=external_classes,
        fixed_dir=f"{EXTERNAL_DIR}/fixed",
        image_size=config["audit"]["image_size"],
        near_threshold=config["audit"]["near_duplicate_threshold"],
    script:
        "../scripts/external_audit.py"


rule external_validation:
    input:
        unpack(external_models),
    output:
        predictions=f"{EXTERNAL_MODEL_DIR}/{PREDICTIONS_TSV}",
        metrics=f"{EXTERNAL_MODEL_DIR}/{METRICS_JSON}",
        fold_metrics=PLAN.fold_paths(
            EXTERNAL_FOLD_METRICS,
            external="{external}",
            task="{task}",
            backbone="{backbone}",
        ),
    log:
        "logs/external_validation/{external}/{task}/{backbone}.log",
    wildcard_constraints:
        backbone="|".join(PLAN.compared_models),
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        seed=config["seed"],
    script:
        "../scripts/external_validation.py"


rule external_summary:
    input:
        scored=flat_of(external_scored_table),
        in_domain=flat_of(comparison_prediction_table),
    output:
        table=EXTERNAL_TABLE,
    log:
        "logs/external_summary/{external}/{task}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        scored=external_scored_table,
        in_domain=comparison_prediction_table,
        bootstrap=config["evaluate"]["bootstrap_samples"],
        seed=config["seed"],
    script:
        "../scripts/external_summary.py"
