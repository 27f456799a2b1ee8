"""``leadvault keys``: the master key versions of the key ring (``leadvault.keys``)."""

from __future__ import annotations

import click

from leadvault.commands import ROW_ID, Refused, app_session, load_app


@click.group()
def keys() -> None:
    """Master key rotation."""


@keys.command("status")
def keys_status() -> None:
    """Show master key versions and how many data keys each wraps."""
    from leadvault import keys as key_service
    from leadvault.app import runtime

    app = load_app()
    keyring = runtime(app).vault.keyring
    with app_session(app) as session:
        for version in sorted(keyring.master_keys):
            active = " (active)" if version == keyring.active_version else ""
            used = key_service.count_using(session, version)
            click.echo(f"version {version}{active}: {used} data keys")


@keys.command("rotate")
def keys_rotate() -> None:
    """Add a master key version and re-wrap every data key under it."""
    from leadvault import keys as key_service
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    app = load_app()
    rt = runtime(app)
    keyring = rt.vault.keyring
    version = keyring.add_master_version()
    # Save first: a crash mid-way leaves keys wrapped by either version, both held.
    keyring.save()
    with unit_of_work(rt.session_factory) as session:
        total = key_service.count_stale(session, version)
    with click.progressbar(length=total, label=f"Re-wrapping under version {version}") as bar:
        while True:
            with unit_of_work(rt.session_factory) as session:
                done = key_service.rewrap_batch(session)
            if not done:
                break
            bar.update(done)
    click.echo(f"Master key version {version} is active; {total} data keys re-wrapped.")
    older = sorted(v for v in keyring.master_keys if v != version)
    if older:
        click.echo(f"Retire older versions with: leadvault keys retire {older[0]}")


@keys.command("retire")
@click.argument("version", type=ROW_ID)
def keys_retire(version: int) -> None:
    """Remove an old master key version once no data key uses it."""
    from leadvault import keys as key_service
    from leadvault.app import runtime
    from leadvault.crypto import KeyringError

    app = load_app()
    keyring = runtime(app).vault.keyring
    with app_session(app) as session:
        used = key_service.count_using(session, version)
    if used:
        raise Refused(
            f"master key version {version} still wraps {used} data keys; "
            "run `leadvault keys rotate` first"
        )
    try:
        keyring.retire_master_version(version)
    except KeyringError as exc:
        raise Refused(str(exc)) from None
    keyring.save()
    click.echo(f"Master key version {version} retired.")
