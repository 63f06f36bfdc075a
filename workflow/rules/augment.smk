rule augment:
    input:
        manifest="results/split/{task}/fold0/split_manifest.tsv",
    output:
        spec="results/augment/{task}/augmentation.json",
        preview=report(
            "results/augment/{task}/augmentation_preview.png",
            caption="../report/augmentation.rst",
            category="Data",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "augmentation"},
        ),
    log:
        "logs/augment/{task}.log",
    conda:
        "../../envs/train.yaml"
    params:
        augment=config["augment"],
        image_size=config["train"]["image_size"],
        seed=config["seed"],
    script:
        "../scripts/augment.py"
