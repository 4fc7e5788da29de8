package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
)

// testCert writes a self-signed ECDSA certificate for 127.0.0.1 and its key to a
// temporary directory and returns the two files and a client TLS configuration that
// trusts the certificate.
func testCert(t *testing.T, notBefore, notAfter time.Time) (certFile, keyFile string, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchboard test"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)

	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return certFile, keyFile, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// stopRun cancels a server started by startRun and checks that it stops cleanly.
func stopRun(t *testing.T, cancel context.CancelFunc, done chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Error("run did not return after cancel")
	}
}

func TestTLSServer(t *testing.T) {
	now := time.Now()
	certFile, keyFile, clientTLS := testCert(t, now.Add(-time.Hour), now.Add(24*time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	addr, _, done := startRun(t, ctx, "--addr", "127.0.0.1:0", "--dev=false",
		"--api-key", testAPIKey, "--jwt-secret", testSecret, "--tls-cert", certFile, "--tls-key", keyFile)
	defer stopRun(t, cancel, done)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: waitLimit}
	defer client.CloseIdleConnections()

	// (1) HTTPS with a client that trusts the certificate.
	res, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET https /healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz over https: %d", res.StatusCode)
	}
	if res.TLS == nil || res.TLS.Version < tls.VersionTLS12 {
		t.Errorf("connection state %+v, want TLS 1.2 or later", res.TLS)
	}

	// (2) wss://: authenticate, subscribe, publish over https, receive the DATA.
	dctx, dcancel := context.WithTimeout(context.Background(), waitLimit)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, "wss://"+addr+"/ws", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	c := &wsClient{t: t, ws: ws}
	defer ws.CloseNow()
	c.authenticate("42")
	c.subscribe("news")

	req, _ := http.NewRequestWithContext(dctx, http.MethodPost, "https://"+addr+"/api/publish",
		strings.NewReader(`{"topic":"news","payload":{"text":"over tls"}}`))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	res, err = client.Do(req)
	if err != nil {
		t.Fatalf("POST https /api/publish: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("publish over https: %d %s", res.StatusCode, body)
	}
	m := c.next(switchboard.TypeData)
	if m.Topic != "news" || m.payload(t)["text"] != "over tls" {
		t.Errorf("DATA topic %q payload %s", m.Topic, m.Payload)
	}

	// (3) Plain HTTP and ws:// on the TLS port fail.
	plain := &http.Client{Timeout: waitLimit}
	if res, err := plain.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Error("plain http:// /healthz on the TLS port answered 200")
		}
	}
	if ws, _, err := websocket.Dial(dctx, "ws://"+addr+"/ws", nil); err == nil {
		ws.CloseNow()
		t.Error("plain ws:// dial to the TLS port succeeded")
	}
	// A client that does not trust the certificate is refused.
	if res, err := (&http.Client{Timeout: waitLimit}).Get("https://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		t.Error("a client without the certificate in its roots connected")
	}
	// TLS 1.1 is refused.
	old := clientTLS.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if conn, err := tls.Dial("tcp", addr, old); err == nil {
		conn.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
}

func TestTLSDevBanner(t *testing.T) {
	now := time.Now()
	certFile, keyFile, _ := testCert(t, now.Add(-time.Hour), now.Add(24*time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logWatch{addrs: make(chan string, 1)}
	stdout := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--dev", "--api-key=", "--jwt-secret=",
			"--tls-cert", certFile, "--tls-key", keyFile}, stdout, logs)
	}()
	var addr string
	select {
	case addr = <-logs.addrs:
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, logs)
	case <-time.After(waitLimit):
		t.Fatalf("run did not start listening\n%s", logs)
	}
	defer stopRun(t, cancel, done)

	banner := stdout.String()
	for _, want := range []string{
		"demo page:   https://" + addr + "/",
		"WebSocket:   wss://" + addr + "/ws",
		"curl -k 'https://" + addr + "/api/dev/token?user=42'",
		"https://" + addr + "/api/publish",
		"self-signed",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "http://") || strings.Contains(banner, "ws://") {
		t.Errorf("banner shows a plain URL:\n%s", banner)
	}
	for _, want := range []string{"url=https://" + addr, "ws_url=wss://" + addr + "/ws", "tls=true", "cert_self_signed=true"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("listening log lacks %q:\n%s", want, logs)
		}
	}
}

func TestTLSOptions(t *testing.T) {
	// Both or neither, from flags or the environment.
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"cert without key":     {[]string{"--tls-cert", "c.pem"}, nil, "--tls-cert needs --tls-key"},
		"key without cert":     {[]string{"--tls-key", "k.pem"}, nil, "--tls-key needs --tls-cert"},
		"env cert without key": {nil, map[string]string{"SWITCHBOARD_TLS_CERT": "c.pem"}, "--tls-cert needs --tls-key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := parseServeOptions(tc.args, envMap(tc.env))
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a usage error %q", err, tc.want)
			}
		})
	}
	o, _, err := parseServeOptions(nil, envMap(map[string]string{
		"SWITCHBOARD_TLS_CERT": "c.pem", "SWITCHBOARD_TLS_KEY": "k.pem",
	}))
	if err != nil || o.TLSCert != "c.pem" || o.TLSKey != "k.pem" {
		t.Fatalf("from env: %v, cert %q key %q", err, o.TLSCert, o.TLSKey)
	}
	// Through run: a usage error, before anything listens.
	err = run(context.Background(), []string{"--addr", "127.0.0.1:0", "--tls-cert", "c.pem"}, io.Discard, io.Discard)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("run --tls-cert alone: %v, want a usage error", err)
	}
}

func TestTLSBadCertificate(t *testing.T) {
	now := time.Now()
	certFile, keyFile, _ := testCert(t, now.Add(-time.Hour), now.Add(24*time.Hour))
	_, otherKey, _ := testCert(t, now.Add(-time.Hour), now.Add(24*time.Hour))
	expiredCert, expiredKey, _ := testCert(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cert, key string
		want      string
	}{
		"garbage cert":   {garbage, keyFile, "--tls-cert " + garbage + ": no PEM CERTIFICATE block"},
		"key as cert":    {keyFile, keyFile, "the key goes in --tls-key"},
		"garbage key":    {certFile, garbage, "--tls-key " + garbage},
		"missing cert":   {filepath.Join(t.TempDir(), "none.pem"), keyFile, "--tls-cert: open"},
		"missing key":    {certFile, filepath.Join(t.TempDir(), "none.pem"), "--tls-key: open"},
		"key of another": {certFile, otherKey, "private key does not match"},
		"expired":        {expiredCert, expiredKey, "expired"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			var logs syncBuffer
			err := run(ctx, []string{"--addr", "127.0.0.1:0", "--dev=false", "--api-key", testAPIKey,
				"--jwt-secret", testSecret, "--tls-cert", tc.cert, "--tls-key", tc.key}, io.Discard, &logs)
			var ue usageError
			if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a startup error mentioning %q", err, tc.want)
			}
			if strings.Contains(logs.String(), "msg=listening") {
				t.Errorf("listened despite the bad certificate:\n%s", logs.String())
			}
		})
	}
}

// TestTLSNotYetValid checks that a certificate whose validity starts later is served
// with a warning rather than refused.
func TestTLSNotYetValid(t *testing.T) {
	now := time.Now()
	certFile, keyFile, _ := testCert(t, now.Add(time.Hour), now.Add(48*time.Hour))
	var logs syncBuffer
	st, err := loadTLS(options{TLSCert: certFile, TLSKey: keyFile}, slog.New(slog.NewTextHandler(&logs, nil)), now)
	if err != nil || st == nil {
		t.Fatalf("loadTLS: %v", err)
	}
	if !strings.Contains(logs.String(), "not valid yet") {
		t.Errorf("no warning:\n%s", logs.String())
	}
	if !st.selfSigned || st.config.MinVersion != tls.VersionTLS12 {
		t.Errorf("self-signed %v, min version %x", st.selfSigned, st.config.MinVersion)
	}
}
