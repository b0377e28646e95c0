"""Starting Spark, and saying clearly when it cannot be started.

``pyspark`` is an optional extra (``pip install 'barberpro_ml[spark]'``) and needs a Java
runtime (17 or later). :func:`require_pyspark` refuses a missing ``pyspark`` with
:class:`SparkUnavailableError` naming the install command; :func:`spark_session` turns a
missing ``java`` into the same error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from barberpro_ml.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_MASTER", "SparkUnavailableError", "require_pyspark", "spark_session"]

DEFAULT_MASTER = "local[2]"
"""The master used when none is given and the process was not started by ``spark-submit``."""

INSTALL_HINT = "pip install 'barberpro_ml[spark]'"


class SparkUnavailableError(InputError):
    """``pyspark`` or the Java runtime it needs is missing (the message says how to get it)."""


def require_pyspark() -> None:
    """Refuse to go on without ``pyspark``.

    Raises
    ------
    SparkUnavailableError
        ``pyspark`` is not installed; the message names ``pip install 'barberpro_ml[spark]'``.
    """
    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailableError(
            f"the Spark engine needs pyspark, which is not installed: {INSTALL_HINT} "
            "(and a Java 17+ runtime, e.g. Debian's openjdk-17-jre-headless)")


def _under_spark_submit() -> bool:
    """Whether ``spark-submit`` started this process (it then owns the JVM and the master)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(master: str | None = None, *, app_name: str = "barberpro-ml",
                  driver_memory: str = "2g", config: Mapping[str, str] | None = None
                  ) -> SparkSession:
    """A Spark session for the library's Spark path (created, or the active one).

    Parameters
    ----------
    master
        Any Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``).
        None: the one ``spark-submit`` was given, else :data:`DEFAULT_MASTER`.
    app_name
        Application name shown by the cluster manager.
    driver_memory
        ``spark.driver.memory`` (only effective when this call starts the JVM).
    config
        Further Spark settings, applied last.

    Returns
    -------
    pyspark.sql.SparkSession
        With ``spark.sql.session.timeZone=UTC`` (the data contract's timestamps are naive UTC)
        and Arrow transfers on. A ``local`` master binds to the loopback interface only, with
        the web UI and console progress bars off and 8 shuffle
        partitions (the default 200 only costs time on one machine).

    Raises
    ------
    SparkUnavailableError
        ``pyspark`` is missing, or the JVM could not start (no ``java`` on the ``PATH`` and no
        ``JAVA_HOME``).
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    if master is None and not _under_spark_submit():
        master = DEFAULT_MASTER
    if (master is not None and master.startswith("local") and shutil.which("java") is None
            and not os.environ.get("JAVA_HOME")):
        raise SparkUnavailableError(
            "the Spark engine needs a Java 17+ runtime and none was found (no java on the PATH, "
            "no JAVA_HOME): install one, e.g. `apt-get install openjdk-17-jre-headless`")
    # the Python workers run the same interpreter (and so the same packages) as the driver
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.memory": driver_memory,
    }
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            settings |= {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
                         "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                         "spark.sql.shuffle.partitions": "8"}
    for key, value in {**settings, **dict(config or {})}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # pyspark raises a bare PySparkRuntimeError when java fails
        if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway" in str(exc):
            raise SparkUnavailableError(
                f"Spark could not start its Java gateway ({exc}); check the Java 17+ runtime "
                "(java on the PATH or JAVA_HOME)") from None
        raise
    session.sparkContext.setLogLevel("ERROR")
    return session
