package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

const healthCheckMethod = "/grpc.health.v1.Health/Check"

// maxResponse caps how much of a response body is read; health answers are tiny.
const maxResponse = 1 << 20

var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// servingStatusNames follows grpc.health.v1.HealthCheckResponse.ServingStatus.
var servingStatusNames = [...]string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"}

const statusServing = 1

// probeGRPCHealth calls grpc.health.v1.Health/Check and requires SERVING.
func probeGRPCHealth(ctx context.Context, addr, service string, tlsConf *tls.Config) error {
	var req []byte // HealthCheckRequest; proto3 omits the empty string entirely
	if service != "" {
		req = append(req, 1<<3|2) // field 1, wire type 2 (length-delimited)
		req = binary.AppendUvarint(req, uint64(len(service)))
		req = append(req, service...)
	}
	body, err := grpcCall(ctx, addr, healthCheckMethod, req, tlsConf)
	if err != nil {
		return err
	}
	msg, err := firstMessage(body)
	if err != nil {
		return err
	}
	status, err := varintField(msg, 1)
	if err != nil {
		return fmt.Errorf("bad HealthCheckResponse: %w", err)
	}
	if status != statusServing {
		return fmt.Errorf("status %s", enumName(servingStatusNames[:], status))
	}
	return nil
}

// probeGRPCMethod calls an arbitrary unary method with an empty message
// (e.g. google.protobuf.Empty) and requires grpc-status OK.
func probeGRPCMethod(ctx context.Context, addr, method string, tlsConf *tls.Config) error {
	_, err := grpcCall(ctx, addr, method, nil, tlsConf)
	return err
}

// grpcCall makes one unary gRPC call over HTTP/2, cleartext (h2c) or TLS when
// tlsConf is set, and returns the response body (still gRPC-framed) when
// grpc-status is 0.
func grpcCall(ctx context.Context, addr, method string, msg []byte, tlsConf *tls.Config) ([]byte, error) {
	frame := make([]byte, 5, 5+len(msg)) // compressed flag 0, then big-endian length
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)

	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: addr, Path: method}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(frame))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set("user-agent", "health-probe/"+version)
	if deadline, ok := ctx.Deadline(); ok {
		// Lets the server abandon the call when the probe gives up.
		req.Header.Set("grpc-timeout", grpcTimeout(time.Until(deadline)))
	}

	tr := &http2.Transport{TLSClientConfig: tlsConf}
	if tlsConf == nil {
		// h2c: AllowHTTP permits the http scheme, and the "TLS" dial is a plain one.
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	defer tr.CloseIdleConnections()

	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	if ct := resp.Header.Get("content-type"); !strings.HasPrefix(ct, "application/grpc") {
		return nil, fmt.Errorf("not a gRPC response (content-type %q)", ct)
	}
	// Trailers are only populated once the body has been read to EOF.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}

	trailer := resp.Trailer
	if trailer.Get("grpc-status") == "" {
		trailer = resp.Header // trailers-only response
	}
	code := trailer.Get("grpc-status")
	if code == "" {
		return nil, errors.New("response has no grpc-status")
	}
	if code != "0" {
		n, err := strconv.ParseUint(code, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad grpc-status %q", code)
		}
		reason := fmt.Sprintf("grpc-status %d (%s)", n, enumName(grpcCodeNames[:], n))
		if m := trailer.Get("grpc-message"); m != "" {
			if dec, err := url.PathUnescape(m); err == nil { // grpc-message is percent-encoded
				m = dec
			}
			reason += ": " + m
		}
		return nil, errors.New(reason)
	}
	return body, nil
}

// grpcTimeout formats d for the grpc-timeout header, which allows at most 8 digits.
func grpcTimeout(d time.Duration) string {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if ms < 1e8 {
		return strconv.FormatInt(ms, 10) + "m"
	}
	return strconv.FormatInt(int64(d.Seconds()), 10) + "S"
}

// firstMessage returns the payload of the first gRPC frame in body.
func firstMessage(body []byte) ([]byte, error) {
	if len(body) < 5 {
		return nil, fmt.Errorf("response has no message (%d bytes)", len(body))
	}
	if body[0] != 0 {
		// We send no grpc-accept-encoding, so a compliant server never compresses.
		return nil, errors.New("compressed response not supported")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	if uint64(len(body)-5) < uint64(n) {
		return nil, fmt.Errorf("truncated message: %d of %d bytes", len(body)-5, n)
	}
	return body[5 : 5+n], nil
}

// varintField returns the last value of varint field num in a protobuf
// message, skipping other fields; absent fields read as 0 as in proto3.
func varintField(msg []byte, num uint64) (uint64, error) {
	var val uint64
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		if n <= 0 {
			return 0, errors.New("bad field key")
		}
		msg = msg[n:]
		field, wireType := key>>3, key&7
		switch wireType {
		case 0: // varint
			v, n := binary.Uvarint(msg)
			if n <= 0 {
				return 0, errors.New("bad varint")
			}
			msg = msg[n:]
			if field == num {
				val = v
			}
		case 1: // fixed64
			if len(msg) < 8 {
				return 0, errors.New("truncated fixed64")
			}
			msg = msg[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(msg)
			if n <= 0 || uint64(len(msg)-n) < l {
				return 0, errors.New("truncated length-delimited field")
			}
			msg = msg[uint64(n)+l:]
		case 5: // fixed32
			if len(msg) < 4 {
				return 0, errors.New("truncated fixed32")
			}
			msg = msg[4:]
		default:
			return 0, fmt.Errorf("unsupported wire type %d", wireType)
		}
	}
	return val, nil
}

func enumName(names []string, v uint64) string {
	if v < uint64(len(names)) {
		return names[v]
	}
	return strconv.FormatUint(v, 10)
}

// probeHTTP GETs target and requires a 2xx answer. Redirects are not followed
// and proxy settings are ignored: the probe is about this endpoint only.
func probeHTTP(ctx context.Context, target string) error {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("user-agent", "health-probe/"+version)
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error // drop its `Get "URL":` prefix, the URL is already in the report
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP status %s", resp.Status)
	}
	return nil
}

// probeTCP requires that a TCP connection to addr can be opened.
func probeTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// tlsConfig is the client's TLS for gRPC: the CA certificates that sign the
// server's, and a client certificate for mutual TLS. nil without a CA: h2c.
func tlsConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	if caFile == "" {
		if certFile != "" || keyFile != "" || serverName != "" {
			return nil, errors.New("-tls-cert, -tls-key and -tls-server-name need -tls-ca")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls-ca: no PEM certificate in %s", caFile)
	}
	conf := &tls.Config{RootCAs: roots, ServerName: serverName, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("-tls-cert and -tls-key go together")
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}
