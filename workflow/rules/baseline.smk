rule colour_baseline:
    input:
        manifest="results/split/{task}/fold{fold}/split_manifest.tsv",
        leakage=rules.check_leakage.output.report,
    output:
        metrics="results/evaluation/{task}/colour_baseline/fold{fold}/metrics.json",
        predictions="results/evaluation/{task}/colour_baseline/fold{fold}/predictions.tsv",
        confusion=report(
            "results/evaluation/{task}/colour_baseline/fold{fold}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Evaluation",
            subcategory="colour_baseline",
            labels={
                "task": "{task}",
                "backbone": "colour_baseline",
                "fold": "{fold}",
                "figure": "confusion matrix",
            },
        ),
        roc=report(
            "results/evaluation/{task}/colour_baseline/fold{fold}/roc_curve.png",
            caption="../report/roc_curve.rst",
            category="Evaluation",
            subcategory="colour_baseline",
            labels={
                "task": "{task}",
                "backbone": "colour_baseline",
                "fold": "{fold}",
                "figure": "ROC",
            },
        ),
        reliability=report(
            "results/evaluation/{task}/colour_baseline/fold{fold}/reliability.png",
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="colour_baseline",
            labels={
                "task": "{task}",
                "backbone": "colour_baseline",
                "fold": "{fold}",
                "figure": "calibration",
            },
        ),
        run="results/models/{task}/colour_baseline/fold{fold}/mlflow_run.json",
        image_level="results/evaluation/{task}/colour_baseline/fold{fold}/predictions_image_level.tsv",
    log:
        "logs/colour_baseline/{task}/fold{fold}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        seed=config["seed"],
        tracking=tracking_params(),
        split={
            k: config["split"][k] for k in ("folds", "val_fraction", "test_fraction")
        },
    script:
        "../scripts/colour_baseline.py"
