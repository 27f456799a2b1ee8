"""``leadvault assets …``"""

from __future__ import annotations

from pathlib import Path

import click

from leadvault.commands import Refused, app_session, load_app
from leadvault.untrusted import for_terminal


@click.group()
def assets() -> None:
    """Gated files (whitepapers) delivered after double opt-in."""


@assets.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="Shown in the mail and on the download button.")
@click.option("--form", "form_id", help="Attach to this whitepaper form at once.")
def add(file: Path, title: str, form_id: str | None) -> None:
    """Store FILE in the instance folder as a gated asset."""
    from capture import service as capture_service
    from widgets import service

    app = load_app()
    try:
        with app_session(app) as session:
            asset = service.add_asset(session, file, title=title)
            if form_id:
                form = capture_service.get_form(session, form_id)
                if form is None:
                    raise service.AssetError(f"no form with id {form_id!r}")
                service.attach(session, asset, form)
            click.echo(
                f"asset {asset.public_id}  {for_terminal(asset.title)}  ({asset.size} bytes)"
            )
            if form_id:
                click.echo(f"attached to form {form_id}")
    except service.AssetError as exc:
        raise Refused(str(exc)) from None
    except OSError as exc:  # a name too long for the system, a file it may not read
        raise Refused(f"cannot read {for_terminal(str(file))}: {exc.strerror}") from None


@assets.command("attach")
@click.argument("asset_id")
@click.argument("form_id")
def attach(asset_id: str, form_id: str) -> None:
    """Make a whitepaper form deliver ASSET_ID."""
    from capture import service as capture_service
    from widgets import service

    app = load_app()
    try:
        with app_session(app) as session:
            asset = service.get_asset(session, asset_id)
            form = capture_service.get_form(session, form_id)
            if asset is None or form is None:
                raise service.AssetError("no such asset or form")
            service.attach(session, asset, form)
    except service.AssetError as exc:
        raise Refused(str(exc)) from None
    click.echo(f"Form {form_id} now delivers asset {asset_id}.")


@assets.command("list")
def list_() -> None:
    """List live assets (newest first) with their download counts."""
    from widgets import assets as asset_service

    app = load_app()
    with app_session(app) as session:
        rows = asset_service.listing(session)
        if not rows:
            click.echo("No assets yet. Add one with `leadvault assets add FILE --title …`.")
        for asset in rows:
            title = for_terminal(asset.title)
            click.echo(f"{asset.public_id}  {asset.download_count:6} downloads  {title}")


@assets.command("archive")
@click.argument("asset_id")
def archive(asset_id: str) -> None:
    """Archive ASSET_ID: offered to no form any more; links already mailed keep working."""
    from widgets import assets as asset_service
    from widgets import service

    app = load_app()
    try:
        with app_session(app) as session:
            asset = service.get_asset(session, asset_id)
            if asset is None:
                raise service.AssetError("no such asset")
            asset_service.archive(session, asset)
    except service.AssetError as exc:
        raise Refused(str(exc)) from None
    click.echo(f"Asset {asset_id} archived.")
