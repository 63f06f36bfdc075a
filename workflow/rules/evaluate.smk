rule evaluate:
    input:
        model=rules.train.output.model,
        manifest=rules.split.output.manifest,
        run=rules.train.output.run,
    output:
        metrics="results/evaluation/{task}/{backbone}/metrics.json",
        predictions="results/evaluation/{task}/{backbone}/predictions.tsv",
        confusion=report(
            "results/evaluation/{task}/{backbone}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Evaluation",
            subcategory="{task}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "figure": "confusion matrix",
            },
        ),
        roc=report(
            "results/evaluation/{task}/{backbone}/roc_curve.png",
            caption="../report/roc_curve.rst",
            category="Evaluation",
            subcategory="{task}",
            labels={"task": "{task}", "backbone": "{backbone}", "figure": "ROC"},
        ),
    log:
        "logs/evaluate/{task}/{backbone}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        classes=task_classes,
        image_size=backbone_image_size,
    script:
        "../scripts/evaluate.py"
