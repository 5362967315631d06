// Command health-probe checks one gRPC, HTTP or TCP endpoint and reports
// the result through its exit code. It is built as a fully static binary so
// it can serve as a Docker HEALTHCHECK in images that have no shell, curl or
// grpc_health_probe (including FROM scratch).
//
//	health-probe grpc HOST:PORT [-service NAME | -method /pkg.Service/Method] [-timeout D]
//	             [-tls-ca FILE [-tls-cert FILE -tls-key FILE] [-tls-server-name NAME]]
//	health-probe http URL [-timeout D]
//	health-probe tcp HOST:PORT [-timeout D]
//
// Exit status: 0 healthy, 1 unhealthy (one line on stderr says why), 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"
)

// version is overridden at build time with -ldflags "-X main.version=...".
var version = "dev"

const (
	exitHealthy   = 0
	exitUnhealthy = 1
	exitUsage     = 2
)

const help = `usage:
  health-probe grpc HOST:PORT [-service NAME | -method /pkg.Service/Method] [-timeout D]
               [-tls-ca FILE [-tls-cert FILE -tls-key FILE] [-tls-server-name NAME]]
  health-probe http URL [-timeout D]
  health-probe tcp HOST:PORT [-timeout D]
exit status: 0 healthy, 1 unhealthy, 2 usage error
flags (allowed before or after MODE TARGET):
`

const usageHint = "run health-probe -h for usage"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// probeFunc performs one check; a nil error means healthy.
type probeFunc func(ctx context.Context) error

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health-probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are reported below, on one line
	timeout := fs.Duration("timeout", 2*time.Second, "bound on the whole probe")
	service := fs.String("service", "", "grpc: service name sent in the health check request")
	method := fs.String("method", "", "grpc: call `/pkg.Service/Method` with an empty message instead of the health check")
	tlsCA := fs.String("tls-ca", "", "grpc: speak TLS, trusting the CA certificates in this PEM `file`")
	tlsCert := fs.String("tls-cert", "", "grpc: the client certificate for mutual TLS (PEM `file`)")
	tlsKey := fs.String("tls-key", "", "grpc: its private key (PEM `file`)")
	tlsServerName := fs.String("tls-server-name", "", "grpc: the `name` the server's certificate must carry (default: the target's host)")
	showVersion := fs.Bool("version", false, "print the version and exit")

	// One line, since probe output usually ends up in a container's health log.
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "health-probe: "+format+" ("+usageHint+")\n", a...)
		return exitUsage
	}

	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitHealthy
	}
	if err != nil {
		return usageErr("%v", err)
	}
	if *showVersion {
		fmt.Fprintf(stdout, "health-probe %s (%s)\n", version, runtime.Version())
		return exitHealthy
	}

	if len(pos) != 2 {
		return usageErr("want MODE TARGET, got %d argument(s)", len(pos))
	}
	if *timeout <= 0 {
		return usageErr("-timeout must be positive, got %s", *timeout)
	}
	mode, target := pos[0], pos[1]
	if mode != "grpc" && (*service != "" || *method != "" || *tlsCA != "" || *tlsCert != "" || *tlsKey != "") {
		return usageErr("-service, -method and -tls-* apply only to grpc")
	}
	tlsConf, err := tlsConfig(*tlsCA, *tlsCert, *tlsKey, *tlsServerName)
	if err != nil {
		return usageErr("%v", err)
	}

	label := mode + " " + target
	var probe probeFunc
	switch mode {
	case "grpc":
		if err := checkHostPort(target); err != nil {
			return usageErr("%v", err)
		}
		switch {
		case *method != "" && *service != "":
			return usageErr("-service and -method are mutually exclusive")
		case *method != "":
			if err := checkMethod(*method); err != nil {
				return usageErr("%v", err)
			}
			label += " " + *method
			probe = func(ctx context.Context) error { return probeGRPCMethod(ctx, target, *method, tlsConf) }
		default:
			if *service != "" {
				label += fmt.Sprintf(" service %q", *service)
			}
			probe = func(ctx context.Context) error { return probeGRPCHealth(ctx, target, *service, tlsConf) }
		}
	case "http":
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErr("http target must be an http:// or https:// URL, got %q", target)
		}
		probe = func(ctx context.Context) error { return probeHTTP(ctx, u.String()) }
	case "tcp":
		if err := checkHostPort(target); err != nil {
			return usageErr("%v", err)
		}
		probe = func(ctx context.Context) error { return probeTCP(ctx, target) }
	default:
		return usageErr("unknown mode %q (want grpc, http or tcp)", mode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := probe(ctx); err != nil {
		// Timeouts surface as assorted wrapped errors; one plain reason reads better.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s", *timeout)
		}
		fmt.Fprintf(stderr, "health-probe: %s: %v\n", label, err)
		return exitUnhealthy
	}
	return exitHealthy
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments, which the flag package alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func checkHostPort(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("target must be HOST:PORT, got %q", target)
	}
	return nil
}

func checkMethod(m string) error {
	svc, name, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	if !strings.HasPrefix(m, "/") || !ok || svc == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("-method must look like /pkg.Service/Method, got %q", m)
	}
	return nil
}
