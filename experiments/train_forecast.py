"""Train the forecast model: what `mlflow run . -e train_forecast` runs.

The job itself is `barberpro_ml.jobs.forecast` (typed config, run, register, gate, promote); this
script is the command line `barberpro-ml train forecast` with the same options (`--config`,
`--data`, `--new-data-set`, `--tracking-uri`). Exit 3 when a blocking gate fails.
"""

import sys

from barberpro_ml.cli import main

if __name__ == "__main__":
    sys.argv = ["barberpro-ml", "train", "forecast", *sys.argv[1:]]
    main()
