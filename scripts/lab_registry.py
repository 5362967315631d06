"""The three-host lab's registry (Debian's docker-registry on node1): served over TLS and answering only
to its user.

Everything lives in the registry's home directory (CLUSTER_DIR/registry):

- tls/ca.crt, tls/ca.key: the registry's own CA, made once (an engine trusts it when the file is at
  /etc/docker/certs.d/HOST:PORT/ca.crt, which the collection's roles put there from
  images_registry_ca_file and stack_registry_ca_file);
- tls/registry.crt, tls/registry.key: the registry's certificate for its address (IP SAN), issued
  anew at each start;
- auth/password: the password of the user USER, made once (0600); auth/htpasswd: its bcrypt hash, the
  only login the registry accepts, for pushes and pulls alike;
- registry.yml: the registry's configuration.

The CA exists before any playbook runs: the registry is up before the images are built and pushed,
as a cluster's registry comes before the stack it serves. Standard library and the openssl command.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import shutil
import ssl
import subprocess
import sys
import warnings
from pathlib import Path

USER = "voltha"
CA_DAYS = 3650
CERT_DAYS = 397  # what browsers and Go's own checks accept for a leaf
REALM = "voltha-envoy lab registry"


class RegistryError(Exception):
    pass


class RegistryFiles:
    """Where each of the registry's files is, under its home."""

    def __init__(self, home: Path):
        self.home = home
        self.ca_cert, self.ca_key = home / "tls" / "ca.crt", home / "tls" / "ca.key"
        self.cert, self.key = home / "tls" / "registry.crt", home / "tls" / "registry.key"
        self.password_file, self.htpasswd = home / "auth" / "password", home / "auth" / "htpasswd"
        self.config = home / "registry.yml"

    def authorization(self) -> str:
        """The Authorization header of the registry's user (Basic)."""
        login = f"{USER}:{self.password_file.read_text().strip()}"
        return "Basic " + base64.b64encode(login.encode()).decode()

    def trusted(self) -> ssl.SSLContext:
        """A client context that trusts the registry's CA."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def _openssl(*args: str) -> None:
    if not shutil.which("openssl"):
        raise RegistryError("the openssl command is needed for the registry's certificates (Debian: apt-get install "
                            "openssl)")
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RegistryError(f"`openssl {args[0]}` failed: {done.stderr.strip()[-500:]}")


def bcrypt_line(user: str, password: str) -> str:
    """An htpasswd line the registry accepts (bcrypt: the only scheme it reads)."""
    with warnings.catch_warnings():  # crypt leaves Python in 3.13; this project runs on 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            raise RegistryError("the registry's htpasswd needs Python's crypt module (Python 3.11 or 3.12; this is "
                                f"{sys.version.split()[0]})") from None
    # The registry checks the hash on every request of a push or pull. The password is 144 random bits,
    # which no cost factor makes safer: the lowest one bcrypt allows.
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    if not hashed or not hashed.startswith("$2"):
        raise RegistryError("this system's crypt() makes no bcrypt hash, which the registry's htpasswd needs")
    return f"{user}:{hashed}\n"


def make_files(home: Path, address: str) -> RegistryFiles:
    """The CA and the password once; the certificate for ``address`` (HOST:PORT) and the htpasswd anew."""
    files = RegistryFiles(home)
    (home / "tls").mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "auth").mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (files.ca_cert.exists() and files.ca_key.exists()):
        _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(files.ca_key), "-out", str(files.ca_cert), "-days", str(CA_DAYS),
                 "-subj", "/CN=voltha-envoy lab registry CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(host)
        name = f"IP:{host}"
    except ValueError:
        name = f"DNS:{host}"
    request = home / "tls" / "registry.csr"
    extensions = home / "tls" / "registry.ext"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(files.key), "-out", str(request), "-subj", f"/CN={host}")
    extensions.write_text(f"subjectAltName={name}\nextendedKeyUsage=serverAuth\n"
                          "keyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(files.ca_cert), "-CAkey", str(files.ca_key),
             "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS), "-extfile", str(extensions),
             "-out", str(files.cert))
    request.unlink()
    extensions.unlink()
    for path in (files.ca_key, files.key):
        path.chmod(0o600)
    files.ca_cert.chmod(0o644)
    files.cert.chmod(0o644)
    if not files.password_file.exists():
        files.password_file.touch(mode=0o600)
        files.password_file.write_text(secrets.token_urlsafe(24) + "\n")
    files.htpasswd.touch(mode=0o600)
    files.htpasswd.write_text(bcrypt_line(USER, files.password_file.read_text().strip()))
    files.config.write_text(config_text(files, address))
    return files


def config_text(files: RegistryFiles, address: str) -> str:
    return (f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {files.home / 'data'}\n"
            f"  delete:\n    enabled: true\n"
            f"http:\n  addr: {address}\n  tls:\n    certificate: {files.cert}\n    key: {files.key}\n"
            f"auth:\n  htpasswd:\n    realm: {REALM}\n    path: {files.htpasswd}\n")
