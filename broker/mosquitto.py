"""Mosquitto for a Nextup site: configuration, per-device credentials and ACL, a managed process.

Everything Mosquitto-specific lives here. Topic strings come from
``nextup.contract.Topics``; this module only decides who may use them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from central.domain.errors import NextupError
from nextup.contract import DEVICE_ID, Topics

CENTRAL_USER = "central"
SYS_TOPICS = "$SYS/#"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
SECRETS_FILE = "credentials.json"
CONFIG_FILE = "mosquitto.conf"
PID_FILE = "mosquitto.pid"
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
AUTOSAVE_INTERVAL_S = 5
PASSWORD_BYTES = 24  # 192 bits; the floor is 128
MIN_GIVEN_PASSWORD = 16


class BrokerError(NextupError, RuntimeError):
    """Mosquitto did not start, stop or take new credentials as asked."""

    code = "broker_error"


# --- configuration --------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """The server side of the devices' TLS listener."""

    cafile: Path
    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class BrokerConfig:
    """Where a broker keeps its files and what it listens on."""

    directory: Path  # password file, ACL, credentials, pid file, rendered config
    data_dir: Path  # persistence database
    port: int = DEFAULT_PORT
    bind_address: str = "127.0.0.1"
    tls: TlsFiles | None = None
    tls_port: int = DEFAULT_TLS_PORT
    tls_bind_address: str = ""  # every interface
    autosave_interval: int = AUTOSAVE_INTERVAL_S
    user: str = "mosquitto"
    log_file: Path | None = None  # None: syslog

    @property
    def config_file(self) -> Path:
        return Path(self.directory) / CONFIG_FILE

    @property
    def pid_file(self) -> Path:
        return Path(self.directory) / PID_FILE


def _template(name: str) -> string.Template:
    return string.Template(resources.files("broker").joinpath(name).read_text(encoding="utf-8"))


def _word(value: object, what: str) -> str:
    # Mosquitto reads a value up to the end of the line and splits on spaces:
    # a space or newline in a path would silently become another option.
    text = str(value)
    if any(c.isspace() for c in text):
        raise ValueError(f"{what} {text!r} must not contain spaces or line breaks")
    return text


def _port(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError(f"{what} {value!r} is not a TCP port")
    return value


def render_config(config: BrokerConfig) -> str:
    """The text of ``mosquitto.conf`` for ``config``, from the package's templates."""
    if config.autosave_interval < 1:
        raise ValueError("autosave_interval must be at least 1 second")
    directory = Path(config.directory)
    tls = "# No TLS listener."
    if config.tls is not None:
        tls = _template("mosquitto-tls.conf").substitute(
            tls_port=_port(config.tls_port, "TLS port"),
            tls_bind_address=_word(config.tls_bind_address, "TLS bind address"),
            cafile=_word(config.tls.cafile, "CA file"),
            certfile=_word(config.tls.certfile, "certificate file"),
            keyfile=_word(config.tls.keyfile, "key file"),
        )
    text = _template(CONFIG_FILE).substitute(
        password_file=_word(directory / PASSWORD_FILE, "password file"),
        acl_file=_word(directory / ACL_FILE, "ACL file"),
        user=_word(config.user, "user"),
        pid_file=_word(config.pid_file, "pid file"),
        port=_port(config.port, "port"),
        bind_address=_word(config.bind_address, "bind address"),
        tls_listener=tls.rstrip("\n"),
        data_dir=_word(Path(config.data_dir), "data directory"),
        autosave_interval=int(config.autosave_interval),
        log_dest="syslog" if config.log_file is None else f"file {_word(config.log_file, 'log file')}",
    )
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def write_config(config: BrokerConfig) -> Path:
    """Render ``config`` into its directory (made if missing); the path of the file."""
    Path(config.directory).mkdir(parents=True, exist_ok=True)
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    _replace(config.config_file, render_config(config), 0o644)
    return config.config_file


# --- credentials and ACL ----------------------------------------------------------


def _devices(devices: Iterable[tuple[str, str]], site: str) -> list[tuple[str, str]]:
    topics = Topics(site)
    seen: set[str] = set()
    out = []
    for device_id, kind in devices:
        if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
            raise ValueError(f"device id {device_id!r} is not valid")
        if device_id == CENTRAL_USER:
            raise ValueError(f"device id {device_id!r} is the central's own broker user")
        if device_id in seen:
            raise ValueError(f"device id {device_id!r} is listed twice")
        topics.device_acl(device_id, kind)  # rejects an unknown kind
        seen.add(device_id)
        out.append((device_id, str(kind)))
    return out


def render_acl(site: str, devices: Iterable[tuple[str, str]]) -> str:
    """The Mosquitto ACL file: central everywhere under the namespace, each device its role."""
    topics = Topics(site)
    lines = [
        "# Nextup broker ACL, generated: change the site's devices and rerun",
        "# `nextup broker credentials` instead of editing it.",
        "",
        f"user {CENTRAL_USER}",
        f"topic readwrite {Topics.every_site()}",
        f"topic read {SYS_TOPICS}",
    ]
    for device_id, kind in _devices(devices, site):
        lines += ["", f"# {kind}", f"user {device_id}"]
        lines += [f"topic {access} {topic}" for access, topic in topics.device_acl(device_id, kind)]
    return "\n".join(lines) + "\n"


def mosquitto_passwd() -> str:
    """The path of ``mosquitto_passwd``."""
    return _find("mosquitto_passwd")


def hash_passwords(passwords: Mapping[str, str]) -> str:
    """The text of a Mosquitto password file holding ``passwords`` (user -> plain text), hashed."""
    for user, password in passwords.items():
        if ":" in user or any(c in user + password for c in "\r\n\0"):
            raise ValueError(f"user {user!r} or its password has a character a password file cannot hold")
    with tempfile.TemporaryDirectory(prefix="nextup-passwd-") as tmp:
        path = Path(tmp) / PASSWORD_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(f"{user}:{password}\n" for user, password in passwords.items())
        # -U hashes every line in one run; -b would cost a process per user.
        done = subprocess.run([mosquitto_passwd(), "-U", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"mosquitto_passwd failed: {(done.stderr or done.stdout).strip()}")
        return path.read_text(encoding="utf-8")


def new_password() -> str:
    """A random broker password of 192 bits."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def read_passwords(directory: str | os.PathLike[str]) -> dict[str, str]:
    """The plain passwords kept in ``directory`` (user -> password); empty when there are none."""
    path = Path(directory) / SECRETS_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise BrokerError(f"{path} is not a map of user names to passwords")
    return data


def write_credentials(
    directory: str | os.PathLike[str],
    site: str,
    devices: Iterable[tuple[str, str]],
    central_password: str | None = None,
    *,
    rotate: bool | Collection[str] = False,
) -> dict[str, str]:
    """Write the password file, the ACL and the kept passwords for ``devices`` ((id, kind) pairs).

    Existing passwords are kept, except those of users in ``rotate`` (or all
    when it is True); devices no longer listed lose their access. Returns
    every user's plain password, central's included. Nothing is written when
    an argument is bad. Apply with ``reload``.
    """
    directory = Path(directory)
    devices = _devices(devices, site)
    acl = render_acl(site, devices)
    if central_password is not None and (
        not isinstance(central_password, str) or len(central_password) < MIN_GIVEN_PASSWORD
    ):
        raise ValueError(f"the central password must have at least {MIN_GIVEN_PASSWORD} characters")
    if isinstance(rotate, str):
        raise TypeError("rotate takes True or a collection of user names, not one string")
    kept = read_passwords(directory)
    users = [CENTRAL_USER, *(device_id for device_id, _ in devices)]
    unknown = set() if isinstance(rotate, bool) else set(rotate) - set(users)
    if unknown:
        raise ValueError(f"cannot rotate unknown users: {', '.join(sorted(unknown))}")

    def fresh(user: str) -> bool:
        return rotate is True or (not isinstance(rotate, bool) and user in rotate) or user not in kept

    passwords = {user: new_password() if fresh(user) else kept[user] for user in users}
    if central_password is not None:
        passwords[CENTRAL_USER] = central_password
    hashed = hash_passwords(passwords)

    directory.mkdir(parents=True, exist_ok=True)
    # The plain passwords first: if a later step fails, the next run still
    # knows every password it may have handed out.
    _replace(directory / SECRETS_FILE, json.dumps(passwords, indent=2) + "\n", 0o600)
    _replace(directory / PASSWORD_FILE, hashed, 0o640)
    _replace(directory / ACL_FILE, acl, 0o640)
    return passwords


def _replace(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically, keeping the owner and group of the file it replaces."""
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if old is not None and hasattr(os, "chown"):
            with contextlib.suppress(PermissionError):  # not root: the file stays ours
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reload(pid: int | str | os.PathLike[str]) -> None:
    """Make a running Mosquitto reread its password file and ACL (SIGHUP); clients stay connected.

    ``pid`` is the process id or the path of its pid file.
    """
    if not isinstance(pid, int):
        path = Path(pid)
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise BrokerError(f"no broker pid in {path}: {exc}") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BrokerError(f"no broker process {pid}") from None


# --- checking a login ---------------------------------------------------------------

ACCEPTED = 0


def _mqtt_string(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def try_login(
    host: str, port: int, user: str | None, password: str | None, *,
    timeout: float = 5.0, tls: ssl.SSLContext | None = None,
) -> int:
    """The MQTT 3.1.1 CONNACK code a login gets (0 accepted, 4 bad user name or password, 5 not
    authorized); the connection is closed at once. Raises OSError when nothing answers."""
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big") + _mqtt_string("")
    if user is not None:
        body += _mqtt_string(user)
    if password is not None:
        body += _mqtt_string(password)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                raise ConnectionResetError("the broker closed the connection before its CONNACK")
            reply += chunk
        if reply[0] != 0x20:
            raise ConnectionError(f"expected a CONNACK, got packet type {reply[0] >> 4}")
        if reply[3] == ACCEPTED:
            sock.sendall(b"\xe0\x00")  # DISCONNECT, so no will and a clean log line
        return reply[3]


# --- a managed broker process ---------------------------------------------------------


def _find(program: str) -> str:
    path = os.environ.get(f"NEXTUP_{program.upper()}") or shutil.which(program)
    if path is None:
        for folder in ("/usr/sbin", "/usr/local/sbin"):
            candidate = Path(folder) / program
            if candidate.exists():
                return str(candidate)
        raise BrokerError(f"{program} is not installed (Debian package mosquitto)")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


class RunningBroker:
    """A Mosquitto of one site run from a directory with the project's configuration.

    Made for the tests and ``nextup demo``: it keeps its credentials in
    ``directory``, the database in ``directory/data`` and the log in
    ``directory/mosquitto.log``. ``start``, ``stop`` and ``kill`` are idempotent.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        site: str = "main",
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: TlsFiles | None = None,
        tls_port: int | None = None,
        autosave_interval: int = AUTOSAVE_INTERVAL_S,
        start_timeout: float = 10.0,
    ) -> None:
        directory = Path(directory)
        self.site = site
        self.host = host
        self.port = port or free_port(host)
        self.tls_port = (tls_port or free_port(host)) if tls else None
        self.log_path = directory / "mosquitto.log"
        self.stderr_path = directory / "mosquitto.stderr"
        self.start_timeout = start_timeout
        self.config = BrokerConfig(
            directory=directory,
            data_dir=directory / "data",
            port=self.port,
            bind_address=host,
            tls=tls,
            tls_port=self.tls_port or DEFAULT_TLS_PORT,
            tls_bind_address=host,
            autosave_interval=autosave_interval,
            user=_current_user(),  # as root, stay the owner of the test's files
            log_file=self.log_path,
        )
        self.devices: dict[str, str] = {}
        write_config(self.config)
        self.passwords = write_credentials(directory, site, [])
        self._process: subprocess.Popen[bytes] | None = None

    # -- process

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RunningBroker:
        """Start Mosquitto (if it is not running) and wait until it accepts connections."""
        if self.running:
            return self
        with open(self.stderr_path, "ab") as err:
            # Its own session: a Ctrl-C at the terminal reaches the owner alone, which
            # stops the broker last, after its clients have said goodbye.
            self._process = subprocess.Popen(
                [_find("mosquitto"), "-c", str(self.config.config_file)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        for port in ports:
            while True:
                if self._process.poll() is not None:
                    raise BrokerError(f"mosquitto exited with {self._process.returncode}:\n{self.log_tail()}")
                try:
                    socket.create_connection((self.host, port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise BrokerError(f"mosquitto did not listen on {port}:\n{self.log_tail()}") from None
                    time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly (SIGTERM, which saves the database) and wait; SIGKILL if it hangs."""
        if not self.running:
            return
        assert self._process is not None
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a power cut would: what was not saved is lost."""
        if not self.running:
            return
        assert self._process is not None
        self._process.kill()
        self._process.wait()

    def __enter__(self) -> RunningBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.stderr_path, self.log_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- users

    def url(self, user: str, *, tls: bool = False) -> str:
        """``mqtt://user:password@host:port`` of a user of this broker (``mqtts://`` on the TLS port)."""
        if tls:
            if self.tls_port is None:
                raise BrokerError("this broker has no TLS listener")
            return f"mqtts://{user}:{self.passwords[user]}@{self.host}:{self.tls_port}"
        return f"mqtt://{user}:{self.passwords[user]}@{self.host}:{self.port}"

    @property
    def central_url(self) -> str:
        return self.url(CENTRAL_USER)

    def add_device(self, device_id: str, kind: str) -> str:
        """Give a device credentials and its ACL, applied by a reload; its URL.

        A device already registered with that kind keeps its password and costs no reload.
        """
        if self.devices.get(device_id) != kind:
            self._apply({**self.devices, device_id: kind}, wait_for=device_id)
        return self.url(device_id)

    def remove_device(self, device_id: str) -> None:
        """Take a device's access away (already open connections stay until they close)."""
        devices = dict(self.devices)
        del devices[device_id]
        old = self.passwords[device_id]
        self._apply(devices)
        self._wait_login(device_id, old, accepted=False)

    def rotate(self, device_id: str) -> str:
        """Give a device (or central) a new password, applied by a reload; its new URL."""
        old = self.passwords[device_id]
        self._apply(self.devices, rotate={device_id}, wait_for=device_id)
        self._wait_login(device_id, old, accepted=False)
        return self.url(device_id)

    def _apply(
        self, devices: dict[str, str], *, rotate: Collection[str] = (), wait_for: str | None = None
    ) -> None:
        self.passwords = write_credentials(self.config.directory, self.site, devices.items(), rotate=rotate)
        self.devices = dict(devices)
        if self.running:
            assert self._process is not None
            reload(self._process.pid)
            if wait_for is not None:
                self._wait_login(wait_for, self.passwords[wait_for], accepted=True)

    def _wait_login(self, user: str, password: str, *, accepted: bool) -> None:
        # A reload happens in the broker's own loop some time after SIGHUP:
        # logging in is the only proof that it took effect.
        if not self.running:
            return
        deadline = time.monotonic() + self.start_timeout
        while (try_login(self.host, self.port, user, password) == ACCEPTED) != accepted:
            if time.monotonic() > deadline:
                raise BrokerError(f"the broker did not apply the credentials of {user}:\n{self.log_tail()}")
            time.sleep(0.02)
