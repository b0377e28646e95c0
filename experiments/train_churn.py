"""Train the churn model: what `mlflow run . -e train_churn` runs.

The job itself is `barberpro_ml.jobs.churn` (typed config, run, register, gate, promote); this
script is the command line `barberpro-ml train churn` with the same options (`--config`,
`--data`, `--new-data-set`, `--tracking-uri`). Exit 3 when a blocking gate fails.
"""

import sys

from barberpro_ml.cli import main

if __name__ == "__main__":
    sys.argv = ["barberpro-ml", "train", "churn", *sys.argv[1:]]
    main()
