"""What the Ansible roles ask of an installed Nextup, run with its virtual environment's python.

Each subcommand answers one question the playbook needs for an idempotent
run (is the schema at head, does the admin's password match, did the
credentials change) or checks a file before it is installed. Nothing here
changes the database; the ``nextup`` command does that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any


def _digest(directory: Path) -> str:
    # The password file is re-salted on every run; the ACL and the kept
    # passwords say whether anyone's access changed.
    h = hashlib.sha256()
    for name in ("acl", "credentials.json"):
        path = directory / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"-") + b"\0")
    return h.hexdigest()


def credentials(args: argparse.Namespace) -> int:
    """Run `nextup broker credentials` (in this process) and say whether anyone's access changed."""
    import contextlib
    import io

    from nextup.cli import main as nextup

    directory = Path(args.dir)
    before = _digest(directory)
    argv = ["broker", "credentials", "--dir", args.dir, "--config", args.config]
    for user in args.rotate:
        argv += ["--rotate", user]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = nextup.main(argv, prog_name="nextup", standalone_mode=False)
    if isinstance(status, int) and status != 0:  # the command printed its reason
        return status
    print(json.dumps({"changed": _digest(directory) != before, "message": out.getvalue().strip()}))
    return 0


def schema(args: argparse.Namespace) -> int:
    from central.store.migrate import current_revision, head_revision
    from nextup.settings import load

    database = load(args.config).database
    print(json.dumps({"current": current_revision(database), "head": head_revision()}))
    return 0


def _registry(store: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from central.store.models import DeviceRow

    with store.read() as s:
        return [{"id": d.id, "kind": d.kind, "point": d.point_serial}
                for d in s.scalars(select(DeviceRow).order_by(DeviceRow.id))]


def _password_matches(store: Any, name: str, role: str, password: str) -> bool:
    from sqlalchemy import select

    from central.store.models import UserRow
    from central.users import verify_password

    with store.read() as s:
        row = s.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        ok = row is not None and row.active and row.role == role
        return verify_password(row.password_hash if row is not None else None, password) and ok


def _store(config: str) -> Any:
    from central.store import Store
    from central.store.migrate import check_schema
    from nextup.settings import load

    database = load(config).database
    check_schema(database)
    return Store(database)


def facts(args: argparse.Namespace) -> int:
    """The device registry, and whether the password on stdin is the admin's: one start of Python."""
    password = sys.stdin.readline().rstrip("\r\n")
    store = _store(args.config)
    try:
        print(json.dumps({"registry": _registry(store),
                          "admin_password_matches": _password_matches(store, args.admin, "admin", password)}))
    finally:
        store.close()
    return 0


def password_matches(args: argparse.Namespace) -> int:
    """Print "matches" when the password on stdin is the user's, else "differs"."""
    password = sys.stdin.readline().rstrip("\r\n")
    store = _store(args.config)
    try:
        print("matches" if _password_matches(store, args.name, args.role, password) else "differs")
    finally:
        store.close()
    return 0


def check_site(args: argparse.Namespace) -> int:
    from central.sitespec import parse_site_file

    parse_site_file(args.file)
    return 0


def check_device(args: argparse.Namespace) -> int:
    from nextup.settings import load

    settings = load(args.file)
    if not settings.device_id:
        raise SystemExit(f"{args.file}: device_id is missing")
    if args.kind == "kiosk":
        from edge.kiosk.app import parse_buttons

        parse_buttons(settings.extra.get("buttons"))
    elif args.kind == "display":
        from edge.display.app import parse_resolution

        parse_resolution(settings.extra.get("resolution"))
    return 0


def broker_config(args: argparse.Namespace) -> int:
    """Print the project's mosquitto.conf for the given paths and ports (JSON on stdin)."""
    from broker.mosquitto import BrokerConfig, TlsFiles, render_config

    given = json.load(sys.stdin)
    tls = given.pop("tls", None)
    log_file = given.pop("log_file", None)
    config = BrokerConfig(
        directory=Path(given.pop("directory")),
        data_dir=Path(given.pop("data_dir")),
        tls=TlsFiles(**{k: Path(v) for k, v in tls.items()}) if tls else None,
        log_file=Path(log_file) if log_file else None,
        **given,
    )
    sys.stdout.write(render_config(config))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="provision.py", description=__doc__)
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("credentials")
    p.add_argument("--dir", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--rotate", action="append", default=[])
    p.set_defaults(func=credentials)
    p = sub.add_parser("schema")
    p.add_argument("--config", required=True)
    p.set_defaults(func=schema)
    p = sub.add_parser("facts")
    p.add_argument("--config", required=True)
    p.add_argument("--admin", required=True)
    p.set_defaults(func=facts)
    p = sub.add_parser("password-matches")
    p.add_argument("--config", required=True)
    p.add_argument("--role", required=True)
    p.add_argument("name")
    p.set_defaults(func=password_matches)
    p = sub.add_parser("check-site")
    p.add_argument("file")
    p.set_defaults(func=check_site)
    p = sub.add_parser("check-device")
    p.add_argument("kind", choices=["kiosk", "point", "display"])
    p.add_argument("file")
    p.set_defaults(func=check_device)
    p = sub.add_parser("broker-config")
    p.set_defaults(func=broker_config)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # a clear one-line reason for the playbook's output
        message = getattr(exc, "message", None) or str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
