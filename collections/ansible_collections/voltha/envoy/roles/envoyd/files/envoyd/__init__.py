"""envoyd: keeps Envoy's routing in step with the VOLTHA core assignment in Consul.

The one way to start it is `python -m envoyd`: the envoyd role's unit, the envoyd image's entry point
and the repository's venv all run this package (cli.py). It imports the collection's module_utils
subpackages that ../envoyd-module-utils.txt lists, and ships in the collection so that the roles
install it from the tarball.
"""
