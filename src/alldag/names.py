"""The pipeline's vocabulary: names only, no logic, no imports.

The baseline's model name, the headline metric and the file names that several stages, rules or the report
spell. Every module and rule imports them from here, so a name is spelled once; being import-free, it cannot
close an import circle. The metrics and the explanation methods, with their titles and what computes them,
are registries of their own: alldag.metrics and alldag.methods.
"""

BASELINE_NAME = "colour_baseline"  # the baseline's model name in every table, path and run

HEADLINE_METRIC = "balanced_accuracy"  # verdicts, paired tests, the headline and the registry's champion

# output file names spelled by more than one rule, stage or reader
METRICS_JSON = "metrics.json"
PREDICTIONS_TSV = "predictions.tsv"
RUN_JSON = "mlflow_run.json"
EXPLANATION_SUMMARY_TSV = "explanation_summary.tsv"
COMPARISON_TSV = "comparison.tsv"
SUMMARY_JSON = "summary.json"
QUARANTINE_TSV = "quarantine.tsv"
DUPLICATES_TSV = "duplicates.tsv"
