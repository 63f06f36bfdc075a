from alldag.download import DownloadOutputs, DownloadSettings, materialise_dataset
from alldag.jobs import named_files
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: materialise_dataset(
        settings=DownloadSettings.from_params(snakemake.params),
        outputs=named_files(DownloadOutputs, snakemake.output),
    ),
)
