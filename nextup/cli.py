"""The ``nextup`` command.  Each subcommand imports what it needs when it runs,
so a point unit without Flask or a laptop without GPIO libraries still starts."""

from __future__ import annotations

import sys

import click

from central.domain.errors import NextupError

from . import __version__
from . import settings as settings_mod
from .launch import run_device


class NextupGroup(click.Group):
    """Turns a ``NextupError`` into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except NextupError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(1)


def _settings(config: str | None = None) -> settings_mod.Settings:
    return settings_mod.load(config)


@click.group(cls=NextupGroup)
@click.version_option(__version__, prog_name="nextup")
def main() -> None:
    """Nextup queue management: central coordinator, edge devices and tools."""


@main.command()
@click.option(
    "--http", "http", default="127.0.0.1:8000", show_default=True, help="HOST:PORT to serve HTTP on"
)
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="TOML settings file")
@click.option(
    "--shared",
    is_flag=True,
    envvar="NEXTUP_SHARED",
    help="one of several instances on one PostgreSQL sharing the site's devices (MQTT 5 shared "
    "subscriptions); each needs its own NEXTUP_CENTRAL_ID or NEXTUP_INSTANCE folder",
)
def central(http: str, config: str | None, shared: bool) -> None:
    """Run the coordinator: HTTP server and MQTT bridge."""
    from central.runner import run_central

    host, _, port = http.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--http")
    run_central(_settings(config), host=host, port=int(port), shared=shared)


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def db_upgrade(config: str | None) -> None:
    """Apply Alembic migrations up to the newest schema."""
    from central.store.migrate import upgrade

    settings = _settings(config)
    upgrade(settings.database)
    click.echo("database is at the newest schema")


@main.group()
def site() -> None:
    """The site's services, points, priority classes, devices and users."""


@site.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def site_apply(file: str, config: str | None) -> None:
    """Create or update everything FILE declares; applying it twice changes nothing."""
    from central.sitefile import apply_site_file

    report = apply_site_file(_settings(config), file)
    click.echo(report)


@main.group()
def user() -> None:
    """People who sign in: admins and specialists."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "specialist"]), required=True)
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def user_add(name: str, role: str, config: str | None) -> None:
    """Add a user; the password comes from a prompt, or from stdin when it is not a terminal."""
    from central.users import add_user

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    add_user(_settings(config), name, role, password)
    click.echo(f"user {name} ({role}) added")


def _edge_options(func):  # type: ignore[no-untyped-def]
    func = click.option("--sim", is_flag=True, help="mock pins (gpiozero MockFactory) and a dummy printer")(
        func
    )
    return click.option("--config", type=click.Path(exists=True, dir_okay=False), help="device TOML file")(
        func
    )


# The device commands are also run without click by nextup.launch, the ``nextup`` command's entry
# point; an option added here must be added there too.


@main.command()
@_edge_options
def kiosk(config: str | None, sim: bool) -> None:
    """The ticket kiosk: buttons and a thermal printer."""
    run_device("kiosk", config, sim)


@main.command()
@_edge_options
def point(config: str | None, sim: bool) -> None:
    """The point unit: buttons, LEDs and an LCD at a service point."""
    run_device("point", config, sim)


@main.command()
@_edge_options
@click.option(
    "--screenshot", type=click.Path(dir_okay=False), help="write the frame as PNG after each redraw"
)
def display(config: str | None, sim: bool, screenshot: str | None) -> None:
    """The hall display: calls and waiting counts on an HDMI screen."""
    run_device("display", config, sim, screenshot)


@main.group()
def broker() -> None:
    """The broker's per-device credentials."""


@broker.command("credentials")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="where the password file, ACL and kept passwords go",
)
@click.option(
    "--rotate", multiple=True, help="a user whose password is replaced (repeatable; 'all' for everyone)"
)
@click.option(
    "--pid-file", type=click.Path(dir_okay=False), help="reload the running broker of this pid file"
)
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def broker_credentials(
    directory: str, rotate: tuple[str, ...], pid_file: str | None, config: str | None
) -> None:
    """Write a user (= device id) and password for each device of the registry, and central's own."""
    from broker.mosquitto import SECRETS_FILE, reload, write_credentials
    from central.registry_export import registered_devices

    settings = _settings(config)
    rotation: bool | tuple[str, ...] = True if "all" in rotate else rotate
    passwords = write_credentials(directory, settings.site, registered_devices(settings), rotate=rotation)
    if pid_file:
        reload(pid_file)
    click.echo(f"{len(passwords)} broker users written; their passwords are in {directory}/{SECRETS_FILE}")


@main.command()
@click.option(
    "--http", "http", default="127.0.0.1:8000", show_default=True, help="HOST:PORT central serves HTTP on"
)
@click.option("--port", type=click.IntRange(1, 65535), help="the broker's port (default: a free one)")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="keep the database, broker files and frames here (default: a temporary folder, removed)",
)
@click.option(
    "--site",
    "site_file",
    type=click.Path(exists=True, dir_okay=False),
    help="the site file to run (default: examples/demo-site.toml)",
)
@click.option("--silent", is_flag=True, help="no chime or spoken announcements")
def demo(http: str, port: int | None, directory: str | None, site_file: str | None, silent: bool) -> None:
    """A whole simulated site on this machine: broker, central, a kiosk, point units and a display."""
    from pathlib import Path

    from nextup.demo import DEMO_SITE, DemoOptions, run_demo

    host, _, http_port = http.rpartition(":")
    if not host or not http_port.isdigit() or not 0 < int(http_port) < 65536:
        raise click.BadParameter("expected HOST:PORT", param_hint="--http")
    options = DemoOptions(
        host=host,
        http_port=int(http_port),
        broker_port=port,
        directory=Path(directory) if directory else None,
        site_file=Path(site_file) if site_file else DEMO_SITE,
        silent=silent,
    )
    run_demo(options, echo=click.echo)


def _not_built_yet(what: str) -> None:
    click.echo(f"nextup {what}: not built yet", err=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
