"""``python -m barberpro_ml.service.record_tests JUNIT --out RECORD``: what ``make test`` runs
after pytest, to record the run for ``/v1/api-management/quality-assurance`` (see
:mod:`barberpro_ml.service.quality`; a module of its own because the service package imports
``quality`` before ``-m`` would run it)."""

from barberpro_ml.service.quality import main

if __name__ == "__main__":
    raise SystemExit(main())
