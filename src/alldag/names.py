"""The pipeline's vocabulary: names only, no logic, no imports.

The baseline's model name, the headline metric, the metrics and explanation methods with their display
titles, and the file names that several stages, rules or the report spell. Every module and rule imports
them from here, so a name is spelled once; being import-free, it cannot close an import circle.
"""

BASELINE_NAME = "colour_baseline"  # the baseline's model name in every table, path and run

HEADLINE_METRIC = "balanced_accuracy"  # verdicts, paired tests, the headline and the registry's champion
# metric -> display title; the order is the tables' column order
METRIC_TITLES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
    "roc_auc": "ROC AUC",
}
METRICS = list(METRIC_TITLES)

# output file names spelled by more than one rule, stage or reader
METRICS_JSON = "metrics.json"
PREDICTIONS_TSV = "predictions.tsv"
RUN_JSON = "mlflow_run.json"
EXPLANATION_SUMMARY_TSV = "explanation_summary.tsv"
COMPARISON_TSV = "comparison.tsv"
SUMMARY_JSON = "summary.json"
QUARANTINE_TSV = "quarantine.tsv"
DUPLICATES_TSV = "duplicates.tsv"
