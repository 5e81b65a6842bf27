"""Bad input to `odm migrate` and `odm.connect`, without a server: a URI's password never shows
in an error, and a migration file that exits while loading is an error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

import odm
from odm import connection
from odm.cli import main
from odm.exceptions import ConfigurationError, MigrationError
from odm.migrations.cli import open_database
from odm.migrations.loader import load_file

SECRET = "Sup3rS3cret"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://deploy:Sup3rS3cret@db1:27017/shop", "mongodb://***@db1:27017/shop"),
        ("mongodb+srv://deploy:Sup3rS3cret@c.example.org/", "mongodb+srv://***@c.example.org/"),
        # Malformed: an unescaped "@", "/" or "?" in the password.
        ("mongodb://deploy:Sup3r@S3cret@db1/shop", "mongodb://***@db1/shop"),
        ("mongodb://deploy:Sup3r/S3cret@db1/shop", "mongodb://***@db1/shop"),
        ("mongodb://deploy:Sup3r?S3cret@db1/shop?w=1", "mongodb://***@db1/shop?w=1"),
        ("deploy:Sup3rS3cret@db1", "***@db1"),
        (
            "mongodb://db1/?tlsCertificateKeyFilePassword=Sup3r@S3cret&w=1",
            "mongodb://db1/?tlsCertificateKeyFilePassword=***&w=1",
        ),
        (
            "mongodb://db1/?authMechanism=MONGODB-AWS"
            "&authMechanismProperties=AWS_SESSION_TOKEN:Sup3rS3cret",
            "mongodb://db1/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
        ),
        ("mongodb://db1:27017,db2:27017/shop?replicaSet=rs0",) * 2,
    ],
)
def test_redact_uri_hides_the_user_info_and_secret_options(uri: str, shown: str) -> None:
    assert connection.redact_uri(uri) == shown


async def test_open_database_quotes_no_password() -> None:
    with pytest.raises(ConfigurationError) as no_name:
        await open_database("mongodb://deploy:Sup3rS3cret@127.0.0.1:1/?replicaSet=rs0", 1.0)
    with pytest.raises(ConfigurationError) as malformed:
        await open_database("mongodb://deploy:Sup3r@S3cret@127.0.0.1:1/shop", 1.0)
    assert "no database name in 'mongodb://***@127.0.0.1:1/?replicaSet=rs0'" in str(no_name.value)
    assert "invalid MongoDB URI 'mongodb://***@127.0.0.1:1/shop'" in str(malformed.value)
    assert "S3cret" not in str(no_name.value) + str(malformed.value)


@pytest.mark.parametrize("password", ["Sup3r@S3cret", "Sup3r/S3cret", "Sup3r:S3cret"])
async def test_connect_quotes_no_password(password: str) -> None:
    with pytest.raises(ConfigurationError) as malformed:
        await odm.connect(f"mongodb://deploy:{password}@127.0.0.1:1/shop", timeout=1)
    assert "invalid MongoDB URI 'mongodb://***@127.0.0.1:1/shop'" in str(malformed.value)
    assert "S3cret" not in str(malformed.value)


def test_the_cli_prints_no_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = "mongodb://deploy:Sup3rS3cret@127.0.0.1:1/?replicaSet=rs0"
    assert main(["migrate", "list", "--uri", uri, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("odm migrate: error: no database name in 'mongodb://***@127.0.0.1:1/")
    assert SECRET not in err


def test_a_file_calling_sys_exit_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "0001_exits.py"
    path.write_text("import sys\nsys.exit(3)\nsteps = []\n")
    with pytest.raises(MigrationError, match=r"0001_exits\.py:2: the file called sys\.exit\(3\)"):
        load_file(path)
    path.write_text("raise SystemExit\nsteps = []\n")
    with pytest.raises(MigrationError, match=r"0001_exits\.py:1: the file called sys\.exit\(\)"):
        load_file(path)


def test_the_cli_names_a_file_that_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "0001_exits.py").write_text("import sys\nsys.exit(3)\nsteps = []\n")
    # `new` loads the directory before writing: exit 1 with one line, not the file's status 3.
    assert main(["migrate", "new", "next", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0001_exits.py:2: the file called sys.exit(3)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0001_exits.py"]
