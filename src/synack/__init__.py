"""synack: a TCP/IP stack in pure Python with a sans-IO core."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synack")  # the one place it is written: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
