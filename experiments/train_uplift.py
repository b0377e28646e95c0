"""Train the uplift model: what `mlflow run . -e train_uplift` runs.

The job itself is `barberpro_ml.jobs.uplift` (typed config, run, register, gate, promote); this
script is the command line `barberpro-ml train uplift` with the same options (`--config`,
`--data`, `--new-data-set`, `--tracking-uri`). Exit 3 when a blocking gate fails.
"""

import sys

from barberpro_ml.cli import main

if __name__ == "__main__":
    sys.argv = ["barberpro-ml", "train", "uplift", *sys.argv[1:]]
    main()
