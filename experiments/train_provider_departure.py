"""Train the provider-departure model: what `mlflow run . -e train_provider_departure` runs.

The job itself is `barberpro_ml.jobs.provider_departure` (typed config, run, register, gate,
promote); this script is the command line `barberpro-ml train provider-departure` with the
same options (`--config`, `--data`, `--new-data-set`, `--tracking-uri`). Exit 3 when a
blocking gate fails.
"""

import sys

from barberpro_ml.cli import main

if __name__ == "__main__":
    sys.argv = ["barberpro-ml", "train", "provider-departure", *sys.argv[1:]]
    main()
