rule evaluate:
    input:
        model=rules.train.output.model,
        manifest=SPLIT_MANIFEST,
        probed=PROBED_TABLE,
    output:
        metrics=f"{EVALUATION_DIR}/{METRICS_JSON}",
        predictions=PREDICTIONS,
        confusion=model_figure(
            f"{EVALUATION_DIR}/confusion_matrix.png",
            "confusion_matrix.rst",
            "Evaluation",
            "confusion matrix",
        ),
        roc=model_figure(
            f"{EVALUATION_DIR}/roc_curve.png", "roc_curve.rst", "Evaluation", "ROC"
        ),
        reliability=model_figure(
            f"{EVALUATION_DIR}/reliability.png",
            "reliability.rst",
            "Evaluation",
            "calibration",
        ),
        stain_predictions=STAIN_PROBE_PREDICTIONS,
        stain_metrics=STAIN_PROBE_METRICS,
    log:
        f"logs/evaluate/{MODEL_FOLD}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
    script:
        "../scripts/evaluate.py"
