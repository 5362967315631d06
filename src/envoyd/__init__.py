"""envoyd: keeps Envoy's routing in step with the VOLTHA core assignment in Consul.

The logic lives in the voltha.envoy collection's module_utils, shared with the Ansible modules;
this package is the command-line entry point (`envoyd`, `python -m envoyd`).
"""
