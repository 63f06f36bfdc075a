import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.evaluate import evaluate_model  # noqa: E402

inp, out, w = snakemake.input, snakemake.output, snakemake.wildcards
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: evaluate_model(
        inp.model, inp.manifest, inp.run, list(snakemake.params.classes), snakemake.params.image_size,
        f"{w.task}/{w.backbone}/fold{w.fold}", out.metrics, out.predictions, out.confusion, out.roc, out.reliability,
    ),
)
