# The download needs the internet, which cluster compute nodes often lack: it runs where snakemake runs.
localrules:
    download,


rule download:
    output:
        dataset=f"{DATA}/dataset.tsv",
        provenance=PROVENANCE,
        verification=f"{DATA}/verification.tsv",
    log:
        "logs/download.log",
    conda:
        "../../envs/data.yaml"
    params:
        source=source_params(),
        requested=config["data"]["source"],
        folder=config["data"]["folder"],
        synthetic=config["data"]["synthetic"],
        synthetic_dir=f"{DATA}/synthetic",
        manifest=PLAN.data_manifest,
        verify=config["data"]["verify"],
    script:
        "../scripts/download.py"
