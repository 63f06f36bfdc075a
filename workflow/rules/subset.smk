rule subset:
    input:
        images=rules.audit.output.images,
    output:
        subset="results/subset/{task}.tsv",
    log:
        "logs/subset/{task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        classes=task_classes,
        max_per_class=config["data"]["max_images_per_class"],
        seed=config["seed"],
    script:
        "../scripts/subset.py"
