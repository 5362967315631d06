# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The shipped Envoy v3 template for VOLTHA's northbound gRPC interface.

Kept as a Python string so it travels with the code everywhere the code runs (the daemon, the
container image, and Ansible modules on a remote host). Every ``{{ }}`` output is written as a JSON
value by the renderer, so values never need quoting here and can never add configuration.

It is written in JSON (with Jinja comments) rather than YAML because JSON parses at C speed: with
10,000 cores the rendered config is megabytes, and rendering is on the data path. The endpoints
come as ``lb_endpoints``, a list the renderer builds from the validated cores.

Routing (the seed's, on the v3 API): CreateDevice goes round-robin over every assigned core; every
other ``/voltha.`` call goes to the same core cluster (one cluster, so each core is health-checked
and connected to once). No route timeout and no stream idle timeout: VOLTHA has long-lived
streaming calls.

A dead, hung or unreachable core is noticed by Envoy itself, each means with a variable that turns it
off (an empty value): HTTP/2 keepalive pings on every upstream connection (a frozen core or a cut
link fails its ping), active gRPC health checks (grpc.health.v1) of every core, and outlier detection
on local-origin failures (resets, refused connections, timeouts), ejecting at most a bounded share of
the cores. Reads (``read_methods``, regular expressions over the gRPC path; by default every Get* and
List* of the VOLTHA services) are retried on another core on reset, unavailable and after a per-try
timeout, within a retry budget; every other call, which may change state, is retried only when it
never reached a core.

TLS on the listener when the variable tls_cert_file is set: the certificate (and, for mutual TLS,
the client CA) come through SDS files (_envoy/files.secret_files) that name the files and the
directories to watch, so a certificate replaced on disk is served without a restart.

Used by _envoy/render (the default template).
"""

VOLTHA_TEMPLATE = """\
{# Envoy v3 bootstrap for the VOLTHA NBI, rendered by voltha.envoy from the core assignment. #}
{
  {# Envoy needs a node for SDS (the TLS certificate); the dynamic layout's is the same. #}
  "node": {"id": "envoyd", "cluster": "voltha"},
  "admin": {
    "address": {"socket_address": {"address": {{ admin_address }}, "port_value": {{ admin_port }}}}
  },
  "static_resources": {
    "listeners": [{
      "name": {{ listener_name }},
      "address": {"socket_address": {"address": {{ listen_address }}, "port_value": {{ listen_port }}}},
      "per_connection_buffer_limit_bytes": {{ buffer_limit_bytes }},
      "filter_chains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
          "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          "stat_prefix": "ingress_grpc",
          "codec_type": "AUTO",
          "stream_idle_timeout": "0s",
          "access_log": [{
            "name": "envoy.access_loggers.file",
            "typed_config": {
              "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
              "path": {{ access_log_path }}
            }
          }],
          "route_config": {
            "name": "voltha",
            "virtual_hosts": [{
              "name": "voltha",
              "domains": ["*"],
              "routes": [
{%- for pattern in read_methods %}
                {"match": {"safe_regex": {"regex": {{ pattern }}}},
                 "route": {"cluster": {{ cluster_name }}, "timeout": "0s", "retry_policy": {
                   "retry_on": {{ read_retry_on }},
                   "num_retries": {{ retry_attempts }},
{%- if read_per_try_timeout %}
                   "per_try_timeout": {{ read_per_try_timeout }},
{%- endif %}
                   "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
                     "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
                   "host_selection_retry_max_attempts": 3}}},
{%- endfor %}
{%- for method in round_robin_methods %}
                {"match": {"prefix": {{ method }}}, "route": {"cluster": {{ cluster_name }}, "timeout": "0s"}},
{%- endfor %}
                {"match": {"prefix": {{ route_prefix }}}, "route": {"cluster": {{ cluster_name }}, "timeout": "0s"}}
              ],
              "retry_policy": {
                "retry_on": "connect-failure,refused-stream,reset-before-request",
                "num_retries": {{ retry_attempts }},
                "retry_host_predicate": [{
                  "name": "envoy.retry_host_predicates.previous_hosts",
                  "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                  }
                }],
                "host_selection_retry_max_attempts": 3
              }
            }]
          },
          "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
          }]
        }
      }]
{%- if tls_cert_file %},
      "transport_socket": {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
          "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
          "require_client_certificate": {{ tls_client_ca_file | length > 0 }},
          "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [{"name": "nbi_certificate", "sds_config": {
              "path_config_source": {"path": {{ sds_dir ~ '/nbi_certificate.json' }},
                                     "watched_directory": {"path": {{ sds_dir }}}},
              "resource_api_version": "V3"}}]
{%- if tls_client_ca_file %},
            "validation_context_sds_secret_config": {"name": "nbi_client_ca", "sds_config": {
              "path_config_source": {"path": {{ sds_dir ~ '/nbi_client_ca.json' }},
                                     "watched_directory": {"path": {{ sds_dir }}}},
              "resource_api_version": "V3"}}
{%- endif %}
          }
        }
      }
{%- endif %}
      }]
    }],
    "clusters": [
      {
        "name": {{ cluster_name }},
        "type": {{ cluster_type }},
        "connect_timeout": {{ connect_timeout }},
        "lb_policy": "ROUND_ROBIN",
        "common_lb_config": {"healthy_panic_threshold": {"value": {{ healthy_panic_threshold }}}
{%- if lb_update_merge_window %}, "update_merge_window": {{ lb_update_merge_window }}{% endif %}},
        "per_connection_buffer_limit_bytes": {{ buffer_limit_bytes }},
        "typed_extension_protocol_options": {
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {
{%- if keepalive_interval %}
              "connection_keepalive": {"interval": {{ keepalive_interval }}, "timeout": {{ keepalive_timeout }}}
{%- endif %}
            }}
          }
        },
{%- if health_check_interval %}
        "health_checks": [{
          "timeout": {{ health_check_timeout }},
          "interval": {{ health_check_interval }},
          "no_traffic_interval": {{ health_check_interval }},
{%- if health_check_initial_jitter %}
          "initial_jitter": {{ health_check_initial_jitter }},
{%- endif %}
          "unhealthy_threshold": {{ health_check_unhealthy_threshold }},
          "healthy_threshold": {{ health_check_healthy_threshold }},
          "grpc_health_check": {"service_name": {{ health_check_service }}}
        }],
{%- endif %}
{%- if outlier_consecutive_failures %}
        "outlier_detection": {
          "split_external_local_origin_errors": true,
          "consecutive_local_origin_failure": {{ outlier_consecutive_failures }},
          "enforcing_consecutive_local_origin_failure": 100,
          "interval": {{ outlier_interval }},
          "base_ejection_time": {{ outlier_base_ejection_time }},
          "max_ejection_time": {{ outlier_max_ejection_time }},
          "max_ejection_percent": {{ outlier_max_ejection_percent }}
        },
{%- endif %}
{%- if retry_budget_percent %}
        "circuit_breakers": {"thresholds": [{"retry_budget": {
          "budget_percent": {"value": {{ retry_budget_percent }}},
          "min_retry_concurrency": {{ retry_budget_min_concurrency }}}}]},
{%- endif %}
        "load_assignment": {"cluster_name": {{ cluster_name }}, "endpoints": [{"lb_endpoints": {{ lb_endpoints }}}]}
      }
    ]
  }
}
"""
