"""Guard the imports of every Snakemake job of a test's DAG run (see alldag_envguard); on when ALLDAG_ENV_GUARD=1."""

import os
import sys

if os.environ.get("ALLDAG_ENV_GUARD") == "1":
    import alldag_envguard

    alldag_envguard.guard_snakemake_job(sys.orig_argv)
