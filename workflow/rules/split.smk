rule split:
    input:
        subset=rules.subset.output.subset,
    output:
        manifest="results/split/{task}/split_manifest.tsv",
    log:
        "logs/split/{task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        val_fraction=config["split"]["val_fraction"],
        test_fraction=config["split"]["test_fraction"],
        seed=config["seed"],
    script:
        "../scripts/split.py"
