"""The command line: thin click commands over the library, rendered with rich."""

from __future__ import annotations

import click


@click.group()
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Run AutoSEP and other large batches of multimodal LLM calls."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@cli.group()
def data() -> None:
    """Make, load and check datasets."""


@cli.group()
def emulator() -> None:
    """The built-in emulator of the OpenAI, Gemini and Anthropic APIs."""


@cli.group()
def cache() -> None:
    """Inspect and clear the response cache."""


if __name__ == "__main__":
    cli()
