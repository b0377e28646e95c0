from barberpro_ml.cli.main import app, main

__all__ = ["app", "main"]
