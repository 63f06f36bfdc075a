rule evaluate:
    input:
        model=rules.train.output.model,
        manifest="results/split/{task}/fold{fold}/split_manifest.tsv",
    output:
        metrics="results/evaluation/{task}/{backbone}/fold{fold}/metrics.json",
        predictions="results/evaluation/{task}/{backbone}/fold{fold}/predictions.tsv",
        confusion=report(
            "results/evaluation/{task}/{backbone}/fold{fold}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Evaluation",
            subcategory="{backbone}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "confusion matrix",
            },
        ),
        roc=report(
            "results/evaluation/{task}/{backbone}/fold{fold}/roc_curve.png",
            caption="../report/roc_curve.rst",
            category="Evaluation",
            subcategory="{backbone}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "ROC",
            },
        ),
        reliability=report(
            "results/evaluation/{task}/{backbone}/fold{fold}/reliability.png",
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="{backbone}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "calibration",
            },
        ),
    log:
        "logs/evaluate/{task}/{backbone}/fold{fold}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        image_size=backbone_image_size,
    script:
        "../scripts/evaluate.py"
