"""Train the pricing model: what `mlflow run . -e train_pricing` runs.

The job itself is `barberpro_ml.jobs.pricing` (typed config, run, register, gate, promote); this
script is the command line `barberpro-ml train pricing` with the same options (`--config`,
`--data`, `--new-data-set`, `--tracking-uri`). Exit 3 when a blocking gate fails.
"""

import sys

from barberpro_ml.cli import main

if __name__ == "__main__":
    sys.argv = ["barberpro-ml", "train", "pricing", *sys.argv[1:]]
    main()
