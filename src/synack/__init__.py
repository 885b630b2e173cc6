"""synack: a TCP/IP stack in pure Python with a sans-IO core."""

__version__ = "0.1.0"
