rule explain:
    input:
        model=rules.train.output.model,
        manifest=rules.split.output.manifest,
        run=rules.train.output.run,
    output:
        heatmaps="results/explanations/{task}/{backbone}/heatmaps.npz",
        figure=report(
            "results/explanations/{task}/{backbone}/explanations.png",
            caption="../report/explanations.rst",
            category="Explanation",
            subcategory="{task}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "figure": "Grad-CAM vs LIME",
            },
        ),
        agreement="results/explanations/{task}/{backbone}/agreement.tsv",
    log:
        "logs/explain/{task}/{backbone}.log",
    conda:
        "../../envs/explain.yaml"
    params:
        classes=task_classes,
        image_size=backbone_image_size,
        explain=config["explain"],
        seed=config["seed"],
    script:
        "../scripts/explain.py"
