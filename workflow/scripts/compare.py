from alldag.compare import compare_models
from alldag.registry import publish_comparison
from alldag.rulelog import run_rule

out, p = snakemake.output, snakemake.params
runs = list(snakemake.input.runs)  # in expand(model, fold) order, like the predictions


def compare_and_publish():
    summary = compare_models(
        snakemake.wildcards.task,
        list(p.models),
        list(snakemake.input.predictions),
        p.folds,
        list(p.classes),
        p.bootstrap,
        p.seed,
        out.comparison,
        out.paired,
        out.figure,
        p.parent_run_file,
        image_level_paths=list(snakemake.input.image_level),
    )
    run_files = {m: {f: runs[i * p.folds + f] for f in range(p.folds)} for i, m in enumerate(p.models)}
    publish_comparison(snakemake.wildcards.task, summary, run_files, p.parent_run_file, snakemake.input.provenance)


run_rule(snakemake.log[0], snakemake.threads, compare_and_publish)
