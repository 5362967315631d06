"""The lab registry's files (scripts/lab_registry.py): its CA and password made once, its certificate for
its address, an htpasswd line the registry's bcrypt check accepts, a configuration with TLS and the login."""

from __future__ import annotations

import subprocess
import warnings

from scripts.lab_registry import USER, bcrypt_line, make_files

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


def test_the_htpasswd_line_is_a_bcrypt_hash_of_the_password():
    user, hashed = bcrypt_line("voltha", "s3cret").rstrip("\n").split(":", 1)
    assert user == "voltha" and hashed.startswith("$2b$04$")
    assert crypt.crypt("s3cret", hashed) == hashed
    assert crypt.crypt("wrong", hashed) != hashed


def _text(cert) -> str:
    return subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout


def test_ca_and_password_are_made_once_and_the_certificate_follows_the_address(tmp_path):
    first = make_files(tmp_path / "registry", "198.18.4.11:5000")
    ca, password = first.ca_cert.read_bytes(), first.password_file.read_text()
    assert len(password.strip()) >= 32
    text = _text(first.cert)
    assert "IP Address:198.18.4.11" in text and "TLS Web Server Authentication" in text
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(first.ca_cert), str(first.cert)],
                              capture_output=True, text=True)
    assert verified.stdout.strip() == f"{first.cert}: OK", verified.stderr

    again = make_files(tmp_path / "registry", "198.18.9.11:5000")
    assert again.ca_cert.read_bytes() == ca and again.password_file.read_text() == password
    assert "IP Address:198.18.9.11" in _text(again.cert)
    user, hashed = again.htpasswd.read_text().strip().split(":", 1)
    assert user == USER and crypt.crypt(password.strip(), hashed) == hashed
    for secret in (again.ca_key, again.key, again.password_file, again.htpasswd):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    assert sorted(p.name for p in (tmp_path / "registry" / "tls").iterdir()) == [
        "ca.crt", "ca.key", "registry.crt", "registry.key"]
    config = again.config.read_text()
    assert f"addr: 198.18.9.11:5000\n  tls:\n    certificate: {again.cert}\n    key: {again.key}\n" in config
    assert f"auth:\n  htpasswd:\n    realm: voltha-envoy lab registry\n    path: {again.htpasswd}\n" in config


def test_a_registry_named_by_host_name_gets_a_dns_name_in_its_certificate(tmp_path):
    files = make_files(tmp_path / "registry", "registry.lab.example:5000")
    text = _text(files.cert)
    assert "DNS:registry.lab.example" in text and "IP Address" not in text
