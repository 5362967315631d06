package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func runProbe(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsageErrorsExitTwoOnOneLine(t *testing.T) {
	cases := map[string][]string{
		"want MODE TARGET":              {"grpc"},
		"unknown mode":                  {"udp", "127.0.0.1:1"},
		"target must be HOST:PORT":      {"tcp", "localhost"},
		"http target must be":           {"http", "ftp://example/"},
		"-timeout must be positive":     {"tcp", "127.0.0.1:1", "-timeout", "0s"},
		"apply only to grpc":            {"tcp", "127.0.0.1:1", "-service", "x"},
		"mutually exclusive":            {"grpc", "127.0.0.1:1", "-service", "x", "-method", "/a.B/C"},
		"-method must look like":        {"grpc", "127.0.0.1:1", "-method", "a.B/C"},
		"flag provided but not defined": {"tcp", "127.0.0.1:1", "-nonsense"},
	}
	for want, args := range cases {
		code, _, stderr := runProbe(args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line with %q", args, stderr, want)
		}
	}
}

func TestHelpAndVersionExitZero(t *testing.T) {
	if code, stdout, _ := runProbe("-h"); code != exitHealthy || !strings.Contains(stdout, "usage:") {
		t.Errorf("-h: exit %d, stdout %q", code, stdout)
	}
	if code, stdout, _ := runProbe("-version"); code != exitHealthy || !strings.HasPrefix(stdout, "health-probe ") {
		t.Errorf("-version: exit %d, stdout %q", code, stdout)
	}
}

func TestFlagsMayComeBeforeOrAfterTheTarget(t *testing.T) {
	for _, args := range [][]string{
		{"-timeout", "5s", "tcp", "h:1"},
		{"tcp", "-timeout", "5s", "h:1"},
		{"tcp", "h:1", "-timeout", "5s"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		timeout := fs.Duration("timeout", time.Second, "")
		pos, err := parseInterspersed(fs, args)
		if err != nil || strings.Join(pos, " ") != "tcp h:1" || *timeout != 5*time.Second {
			t.Errorf("%v: positional %v, timeout %s, error %v", args, pos, *timeout, err)
		}
	}
}

func TestHostPortAndMethodChecks(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:50556", "[::1]:80", "vcore-1:50556"} {
		if err := checkHostPort(ok); err != nil {
			t.Errorf("checkHostPort(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "host", ":80", "host:", "[::1]"} {
		if checkHostPort(bad) == nil {
			t.Errorf("checkHostPort(%q) accepted", bad)
		}
	}
	if err := checkMethod("/voltha.VolthaService/GetVoltha"); err != nil {
		t.Errorf("checkMethod: %v", err)
	}
	for _, bad := range []string{"", "/", "//x", "/a.B/", "/a.B/C/D", "a.B/C"} {
		if checkMethod(bad) == nil {
			t.Errorf("checkMethod(%q) accepted", bad)
		}
	}
}

func TestTCPProbe(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	if code, _, stderr := runProbe("tcp", addr); code != exitHealthy {
		t.Errorf("open port: exit %d (%s)", code, stderr)
	}
	listener.Close()
	code, _, stderr := runProbe("tcp", addr, "-timeout", "1s")
	if code != exitUnhealthy || !strings.Contains(stderr, "tcp "+addr) {
		t.Errorf("closed port: exit %d, stderr %q", code, stderr)
	}
}

func TestHTTPProbeWantsTwoHundredsAndFollowsNoRedirect(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer server.Close()
	if code, _, stderr := runProbe("http", server.URL+"/ok"); code != exitHealthy {
		t.Errorf("/ok: exit %d (%s)", code, stderr)
	}
	for path, want := range map[string]string{"/moved": "302", "/down": "503"} {
		code, _, stderr := runProbe("http", server.URL+path)
		if code != exitUnhealthy || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q", path, code, stderr)
		}
	}
}
