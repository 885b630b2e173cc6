"""Command-line entry point (placeholder until the demo lands)."""


def main() -> int:
    return 0
