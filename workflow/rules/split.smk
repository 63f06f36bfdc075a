rule split:
    input:
        subset=rules.subset.output.subset,
    output:
        manifests=PLAN.fold_paths(SPLIT_MANIFEST, task="{task}"),
    log:
        "logs/split/{task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        folds=config["split"]["folds"],
        group_blocks=PLAN.split_block_size,
        grouping=PLAN.grouping,
        appearance_threshold=PLAN.appearance_threshold,
        val_fraction=config["split"]["val_fraction"],
        test_fraction=config["split"]["test_fraction"],
        seed=config["seed"],
    script:
        "../scripts/split.py"


rule check_leakage:
    input:
        manifests=fold_manifests,
    output:
        report=LEAKAGE_CHECK,
    log:
        "logs/check_leakage/{task}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/check_leakage.py"
