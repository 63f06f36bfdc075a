rule compare:
    input:
        predictions=comparison_predictions,
        image_level=image_level_baseline_predictions,
    output:
        comparison="results/comparison/{task}/comparison.tsv",
        paired="results/comparison/{task}/paired_tests.tsv",
        figure=report(
            "results/comparison/{task}/comparison.png",
            caption="../report/comparison.rst",
            category="Comparison",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "comparison"},
        ),
    log:
        "logs/compare/{task}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        predictions=comparison_prediction_table,
        classes=task_classes,
        bootstrap=config["evaluate"]["bootstrap_samples"],
        seed=config["seed"],
    script:
        "../scripts/compare.py"
