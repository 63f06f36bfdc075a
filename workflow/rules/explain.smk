rule explain:
    input:
        model=rules.train.output.model,
        manifest="results/split/{task}/fold{fold}/split_manifest.tsv",
    output:
        heatmaps="results/explanations/{task}/{backbone}/fold{fold}/heatmaps.npz",
        gallery=report(
            "results/explanations/{task}/{backbone}/fold{fold}/explanation_gallery.png",
            caption="../report/explanations.rst",
            category="Explanation",
            subcategory="{backbone}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "gallery",
            },
        ),
        explanations="results/explanations/{task}/{backbone}/fold{fold}/explanations.tsv",
        agreement="results/explanations/{task}/{backbone}/fold{fold}/agreement.tsv",
        summary=report(
            "results/explanations/{task}/{backbone}/fold{fold}/explanation_summary.tsv",
            caption="../report/explanation_summary.rst",
            category="Explanation",
            subcategory="{backbone}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "summary table",
            },
        ),
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
