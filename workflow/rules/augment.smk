rule augment:
    input:
        manifest=fill(SPLIT_MANIFEST, fold=0),
    output:
        spec=f"{AUGMENT_DIR}/augmentation.json",
        preview=figure(
            f"{AUGMENT_DIR}/augmentation_preview.png",
            "augmentation.rst",
            "Data",
            "{task}",
            task="{task}",
            figure="augmentation",
        ),
    log:
        "logs/augment/{task}.log",
    conda:
        "../../envs/train.yaml"
    params:
        augment=config["augment"],
        image_size=PLAN.preview_image_size,
        seed=config["seed"],
    script:
        "../scripts/augment.py"
