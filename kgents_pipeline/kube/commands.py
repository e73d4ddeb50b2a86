import click


@click.group()
def manifests() -> None:
    """Render, validate, diff, apply and verify the launch manifests."""
