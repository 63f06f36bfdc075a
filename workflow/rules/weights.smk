# Pretrained weights need the internet, which cluster compute nodes often lack: they are fetched where
# snakemake runs, once per file, and training jobs read them from the cache.
localrules:
    fetch_weights,


rule fetch_weights:
    output:
        weights=f"{PLAN.weights.cache}/{{weights_file}}",
    log:
        "logs/fetch_weights/{weights_file}.log",
    conda:
        "../../envs/data.yaml"
    params:
        entry=weights_entry,
    script:
        "../scripts/fetch_weights.py"
