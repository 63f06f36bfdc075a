rule explain:
    input:
        model=rules.train.output.model,
        manifest="results/split/{task}/fold{fold}/split_manifest.tsv",
        run=rules.train.output.run,
    output:
        heatmaps="results/explanations/{task}/{backbone}/fold{fold}/heatmaps.npz",
        figure=report(
            "results/explanations/{task}/{backbone}/fold{fold}/explanations.png",
            caption="../report/explanations.rst",
            category="Explanation",
            subcategory="{task}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "Grad-CAM vs LIME",
            },
        ),
        agreement="results/explanations/{task}/{backbone}/fold{fold}/agreement.tsv",
    log:
        "logs/explain/{task}/{backbone}/fold{fold}.log",
    conda:
        "../../envs/explain.yaml"
    params:
        classes=task_classes,
        image_size=backbone_image_size,
        explain=config["explain"],
        seed=config["seed"],
    script:
        "../scripts/explain.py"
