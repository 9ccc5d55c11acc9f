"""The version of cchet, read by the build backend and by ``cchet --version``."""

__version__ = "0.1.0"
