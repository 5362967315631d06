"""The NBI clients' TLS options: plaintext without a CA, and the combinations that make no sense refused."""

import argparse

import pytest

from voltha_core_sim.nbi_client import Tls, add_tls_arguments, nbi_channel, tls_of


def parsed(*argv):
    parser = argparse.ArgumentParser()
    add_tls_arguments(parser)
    return parser.parse_args(argv)


def test_no_ca_is_plaintext():
    assert tls_of(parsed()) is None


def test_a_ca_alone_is_tls_without_a_client_certificate():
    assert tls_of(parsed("--tls-ca", "ca.pem")) == Tls("ca.pem")


def test_mutual_tls_takes_certificate_and_key():
    assert tls_of(parsed("--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "c.key",
                         "--tls-server-name", "nbi")) == Tls("ca.pem", "c.pem", "c.key", "nbi")


@pytest.mark.parametrize("argv, message", [
    (("--tls-cert", "c.pem", "--tls-key", "c.key"), "need --tls-ca"),
    (("--tls-server-name", "nbi"), "need --tls-ca"),
    (("--tls-ca", "ca.pem", "--tls-cert", "c.pem"), "go together"),
    (("--tls-ca", "ca.pem", "--tls-key", "c.key"), "go together"),
])
def test_options_that_make_no_sense_are_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        tls_of(parsed(*argv))


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "ca.pem"
    with pytest.raises(SystemExit, match=f"--tls-ca {missing}: No such file"):
        nbi_channel("127.0.0.1:1", Tls(str(missing)))


def test_options_may_come_between_the_address_and_the_verb(capsys):
    """As an operator types them: argparse alone takes the verb after an option for an extra argument."""
    from voltha_core_sim.nbi_client import main

    with pytest.raises(SystemExit, match="need --tls-ca"):  # parsed whole, then judged
        main(["127.0.0.1:1", "--tls-cert", "c.pem", "version"])
    assert main(["127.0.0.1:1", "--timeout", "0.5", "version"]) == 1  # nothing listens on port 1
    assert capsys.readouterr().err.startswith("NBI 127.0.0.1:1: UNAVAILABLE: ")
