rule split:
    input:
        subset=rules.subset.output.subset,
    output:
        manifests=expand(SPLIT_MANIFEST, fold=FOLDS, allow_missing=True),
    log:
        "logs/split/{task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=config["split"]["folds"],
        group_blocks=SPLIT_BLOCK_SIZE,
        grouping=SPLIT_GROUPING,
        appearance_threshold=SPLIT_APPEARANCE_THRESHOLD,
        val_fraction=config["split"]["val_fraction"],
        test_fraction=config["split"]["test_fraction"],
        seed=config["seed"],
    script:
        "../scripts/split.py"


rule check_leakage:
    input:
        manifests=fold_manifests,
    output:
        report="results/split/{task}/leakage_check.tsv",
    log:
        "logs/check_leakage/{task}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/check_leakage.py"
