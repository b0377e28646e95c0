"""Where event data come from: a folder of tables or a PostgreSQL database, named once.

Every command and job that takes ``--data`` (``data_dir`` in a job config) resolves it here:
a ``postgresql://...`` URL (see :mod:`barberpro_ml.data.sql`) or a folder
(:meth:`~barberpro_ml.data.MarketplaceData.load`). Both give the validated data and the data
set's name, its identity in the registry beside the digest of its content; the same tables
give the same digest from either source.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from barberpro_ml.data.container import MarketplaceData
from barberpro_ml.data.sql import is_database_url, read_sql

__all__ = ["LoadedData", "describe_source", "folder_data_set_name", "is_database_url",
           "load_source"]


@dataclass(frozen=True)
class LoadedData:
    """Event data read from a source, with the data set's name and where it was read."""

    data: MarketplaceData
    name: str
    """The data set's name: a folder's ``manifest.json`` ``name``, else the folder's name; a
    database's recorded name (``to_sql(..., name=...)``), else ``database[.schema]``."""
    location: str
    """The folder, or the URL without password."""


def folder_data_set_name(folder: Path) -> str:
    """A folder's data-set name: its manifest's ``name``, else the folder's name."""
    manifest = folder / "manifest.json"
    try:
        name = json.loads(manifest.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return str(name) if isinstance(name, str) and name else folder.resolve().name


def describe_source(source: str | os.PathLike[str]) -> str:
    """``source`` for messages: the folder, or the URL without its password."""
    if is_database_url(source):
        from barberpro_ml.data.sql import parse_database_url

        return parse_database_url(str(source)).describe()
    return str(source)


def load_source(source: str | os.PathLike[str]) -> LoadedData:
    """Read and validate the event data at ``source``: a folder or a PostgreSQL URL.

    Raises
    ------
    InputError
        The folder or a table does not exist, the database cannot be reached (the message
        names which).
    DataContractError
        The tables break the contract.
    """
    if is_database_url(source):
        data, report = read_sql(str(source))
        return LoadedData(data=data, name=report.name, location=report.location)
    folder = Path(source)
    return LoadedData(data=MarketplaceData.load(folder), name=folder_data_set_name(folder),
                      location=str(folder))
