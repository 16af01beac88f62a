"""The benchmarks' tables: aligned plain text on a terminal, Markdown (``--markdown``) for the README."""

from __future__ import annotations


def print_table(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    """Print rows under a header, as Markdown or as aligned plain text."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|---" * len(header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, ["-" * width for width in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
