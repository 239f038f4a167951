"""Command-line interface (placeholder until the CLI lands)."""


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - replaced soon
    return 0
