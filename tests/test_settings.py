"""Settings validation: bad values stop the real console script with one line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leadvault import settings as settings_module
from leadvault.settings import SettingsError


def leadvault_executable() -> str:
    beside = Path(sys.executable).parent / "leadvault"
    if beside.exists():
        return str(beside)
    found = shutil.which("leadvault")
    assert found, "the leadvault console script is not installed"
    return found


def clean_env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADVAULT_")}
    env["LEADVAULT_INSTANCE"] = str(instance)
    env.update(extra)
    return env


def run_check(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [leadvault_executable(), "check"],
        cwd=tmp_path,
        env=clean_env(tmp_path / "instance", **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_config_error(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0], lines[0]


@pytest.fixture
def garbage_keyring(tmp_path: Path) -> str:
    path = tmp_path / "garbage.json"
    path.write_text("{this is not json", encoding="utf-8")
    return str(path)


@pytest.fixture
def wrong_shape_keyring(tmp_path: Path) -> str:
    path = tmp_path / "wrong-shape.json"
    path.write_text('{"format": 1, "master_keys": "nope"}', encoding="utf-8")
    return str(path)


@pytest.fixture
def directory_keyring(tmp_path: Path) -> str:
    path = tmp_path / "keyring-is-a-folder"
    path.mkdir()
    return str(path)


@pytest.fixture
def missing_keyring(tmp_path: Path) -> str:
    return str(tmp_path / "does-not-exist" / "keyring.json")


BAD_VALUES = [
    pytest.param("LEADVAULT_DATABASE_URL", "not a url", id="database-not-a-url"),
    pytest.param("LEADVAULT_DATABASE_URL", "postgresql://host:notaport/db", id="database-port"),
    pytest.param("LEADVAULT_DATABASE_URL", "mysql://host/db", id="database-mysql"),
    pytest.param("LEADVAULT_SMTP_URL", "http://mail.example.com", id="smtp-http"),
    pytest.param("LEADVAULT_SMTP_URL", "smtp://", id="smtp-no-host"),
    pytest.param("LEADVAULT_SMTP_URL", "smtp://h:port", id="smtp-port"),
    pytest.param("LEADVAULT_OPTIN_MAX_AGE_DAYS", "15", id="optin-15-days"),
    pytest.param("LEADVAULT_OPTIN_MAX_AGE_DAYS", "0", id="optin-0-days"),
    pytest.param("LEADVAULT_BASE_URL", "ftp://example.com", id="base-url"),
    pytest.param("LEADVAULT_RATE_LIMIT_IP", "lots", id="rate"),
    pytest.param("LEADVAULT_WORKER_NICE", "20", id="worker-nice-20"),
    pytest.param("LEADVAULT_WORKER_NICE", "-5", id="worker-nice-negative"),
    # A folder of the zone database, not a zone (was an IsADirectoryError traceback).
    pytest.param("LEADVAULT_TIME_ZONE", "Europe", id="time-zone-folder"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_check_refuses_bad_value(tmp_path, variable, value):
    assert_config_error(run_check(tmp_path, **{variable: value}), variable)


@pytest.mark.parametrize(
    "keyring_fixture",
    ["garbage_keyring", "wrong_shape_keyring", "directory_keyring", "missing_keyring"],
)
def test_check_refuses_unreadable_keyring(tmp_path, request, keyring_fixture):
    path = request.getfixturevalue(keyring_fixture)
    result = run_check(tmp_path, LEADVAULT_KEYRING=path)
    assert_config_error(result, "LEADVAULT_KEYRING")
    # Checking must not overwrite or create a key ring in place of a bad one.
    assert not (tmp_path / "instance" / "keyring.json").exists()


def test_check_refuses_unknown_variable(tmp_path):
    result = run_check(tmp_path, LEADVAULT_DATABSE_URL="sqlite:///x.db")
    assert_config_error(result, "LEADVAULT_DATABSE_URL")


def test_check_refuses_unreadable_secret_file(tmp_path):
    result = run_check(tmp_path, LEADVAULT_SMTP_URL_FILE=str(tmp_path / "missing-secret"))
    assert_config_error(result, "LEADVAULT_SMTP_URL_FILE")


# --- leadvault.settings.load, unit level ---------------------------------------------


def test_defaults_live_in_the_instance_folder(tmp_path):
    settings = settings_module.load(environ={"LEADVAULT_INSTANCE": str(tmp_path / "inst")})
    instance = (tmp_path / "inst").resolve()
    assert settings.instance == instance
    assert settings.database_url == f"sqlite:///{instance / 'leadvault.db'}"
    assert settings.is_sqlite
    assert settings.keyring == instance / "keyring.json"
    assert settings.smtp is None
    assert settings.mail_folder == instance / "mail"
    assert settings.optin_max_age_days == 7
    assert settings.base_url == "http://127.0.0.1:5000"


def test_default_instance_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = settings_module.load(environ={})
    assert settings.instance == (tmp_path / "instance").resolve()
    assert settings.keyring == (tmp_path / "instance" / "keyring.json").resolve()


def test_empty_value_means_default(tmp_path):
    settings = settings_module.load(
        environ={"LEADVAULT_INSTANCE": str(tmp_path), "LEADVAULT_OPTIN_MAX_AGE_DAYS": ""}
    )
    assert settings.optin_max_age_days == 7


def test_explicit_values_are_parsed(tmp_path):
    settings = settings_module.load(
        environ={
            "LEADVAULT_INSTANCE": str(tmp_path),
            "LEADVAULT_DATABASE_URL": "postgres://lv:pw@db.example.com:6543/leads",
            "LEADVAULT_KEYRING": str(tmp_path / "elsewhere" / "ring.json"),
            "LEADVAULT_SMTP_URL": "smtp+starttls://user%40x:p%3Aw@mail.example.com",
            "LEADVAULT_OPTIN_MAX_AGE_DAYS": "14",
            "LEADVAULT_BASE_URL": "https://leads.example.com/",
        }
    )
    assert settings.database_url == "postgresql+psycopg://lv:pw@db.example.com:6543/leads"
    assert not settings.is_sqlite
    assert settings.keyring == (tmp_path / "elsewhere" / "ring.json").resolve()
    assert settings.smtp is not None
    assert settings.smtp.host == "mail.example.com"
    assert settings.smtp.port == 587
    assert settings.smtp.security == "starttls"
    assert settings.smtp.username == "user@x"
    assert settings.smtp.password == "p:w"
    assert "p:w" not in settings.smtp.describe()
    assert settings.optin_max_age_days == 14
    assert settings.base_url == "https://leads.example.com"


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_load_names_the_bad_variable(tmp_path, variable, value):
    with pytest.raises(SettingsError) as caught:
        settings_module.load(environ={"LEADVAULT_INSTANCE": str(tmp_path), variable: value})
    assert caught.value.key == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_load_refuses_unknown_variable_but_tolerates_the_test_database(tmp_path):
    with pytest.raises(SettingsError) as caught:
        settings_module.load(
            environ={"LEADVAULT_INSTANCE": str(tmp_path), "LEADVAULT_DATABSE_URL": "x"}
        )
    assert caught.value.key == "LEADVAULT_DATABSE_URL"
    settings = settings_module.load(
        environ={
            "LEADVAULT_INSTANCE": str(tmp_path),
            "LEADVAULT_TEST_DATABASE_URL": "postgresql://x/y",
        }
    )
    assert settings.instance == tmp_path.resolve()


def test_non_secret_has_no_file_variant(tmp_path):
    (tmp_path / "days").write_text("3", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        settings_module.load(
            environ={
                "LEADVAULT_INSTANCE": str(tmp_path),
                "LEADVAULT_OPTIN_MAX_AGE_DAYS_FILE": str(tmp_path / "days"),
            }
        )
    assert caught.value.key == "LEADVAULT_OPTIN_MAX_AGE_DAYS_FILE"


def test_smtp_url_from_file(tmp_path):
    secret = tmp_path / "smtp-url"
    secret.write_text("smtps://robot:s3cret@mail.example.net:2465\n", encoding="utf-8")
    settings = settings_module.load(
        environ={"LEADVAULT_INSTANCE": str(tmp_path), "LEADVAULT_SMTP_URL_FILE": str(secret)}
    )
    assert settings.smtp is not None
    assert settings.smtp.host == "mail.example.net"
    assert settings.smtp.port == 2465
    assert settings.smtp.security == "tls"
    assert settings.smtp.password == "s3cret"


def test_file_variant_wins_and_is_validated(tmp_path):
    secret = tmp_path / "smtp-url"
    secret.write_text("http://not-smtp.example.com", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        settings_module.load(
            environ={
                "LEADVAULT_INSTANCE": str(tmp_path),
                "LEADVAULT_SMTP_URL": "smtp://fine.example.com",
                "LEADVAULT_SMTP_URL_FILE": str(secret),
            }
        )
    assert caught.value.key == "LEADVAULT_SMTP_URL"


def test_instance_that_is_a_file_is_refused(tmp_path):
    occupied = tmp_path / "instance"
    occupied.write_text("", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        settings_module.load(environ={"LEADVAULT_INSTANCE": str(occupied)})
    assert caught.value.key == "LEADVAULT_INSTANCE"
