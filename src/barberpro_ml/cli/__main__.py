"""`python -m barberpro_ml.cli`: the same as the `barberpro-ml` command."""

from barberpro_ml.cli.main import main

main()
