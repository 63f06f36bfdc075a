from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/subset.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/stress.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/track.smk"


# config custom_models: one rule file per new architecture
for rule_file in custom_rule_files():

    include: rule_file


check_model_rules()


rule all:
    default_target: True
    input:
        PLAN.final_output(),
