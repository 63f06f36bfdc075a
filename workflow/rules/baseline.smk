rule colour_baseline:
    input:
        manifest=SPLIT_MANIFEST,
        leakage=rules.check_leakage.output.report,
    output:
        metrics=f"{BASELINE_EVALUATION_DIR}/{METRICS_JSON}",
        predictions=fill(PREDICTIONS, backbone=BASELINE_NAME),
        confusion=model_figure(
            f"{BASELINE_EVALUATION_DIR}/confusion_matrix.png",
            "confusion_matrix.rst",
            "Evaluation",
            "confusion matrix",
            model=BASELINE_NAME,
        ),
        roc=model_figure(
            f"{BASELINE_EVALUATION_DIR}/roc_curve.png",
            "roc_curve.rst",
            "Evaluation",
            "ROC",
            model=BASELINE_NAME,
        ),
        reliability=model_figure(
            f"{BASELINE_EVALUATION_DIR}/reliability.png",
            "reliability.rst",
            "Evaluation",
            "calibration",
            model=BASELINE_NAME,
        ),
        run=BASELINE_RUN,
        image_level=f"{BASELINE_EVALUATION_DIR}/predictions_image_level.tsv",
        by_grouping=f"{BASELINE_EVALUATION_DIR}/predictions_by_grouping.tsv",
    log:
        "logs/colour_baseline/{task}/fold{fold}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        seed=config["seed"],
        tracking=PLAN.tracking,
        split={
            k: config["split"][k] for k in ("folds", "val_fraction", "test_fraction")
        },
        groupings=PLAN.baseline_groupings(),
    script:
        "../scripts/colour_baseline.py"
