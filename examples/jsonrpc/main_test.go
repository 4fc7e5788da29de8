package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "switchboard test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestWSSEndToEnd(t *testing.T) {
	m := switchboard.New(switchboard.Config{})
	ch := newChain(m)
	srv := httptest.NewUnstartedServer(newHandler(m, ch))
	cert, pool := selfSigned(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "wss://" + strings.TrimPrefix(srv.URL, "https://") + "/rpc"
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer ws.CloseNow()
	call := func(frame string) map[string]json.RawMessage {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]json.RawMessage
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return r
	}
	if r := call(`{"jsonrpc":"2.0","method":"getblockcount","id":1}`); string(r["result"]) != "0" {
		t.Fatalf("getblockcount: %v", r)
	}
	r := call(`{"jsonrpc":"2.0","method":"getblock","params":[5],"id":2}`)
	var e struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Data    map[string]uint64 `json:"data"`
	}
	if err := json.Unmarshal(r["error"], &e); err != nil || e.Code != -32000 || e.Message != "block not found" || e.Data["height"] != 5 {
		t.Fatalf("getblock 5: %v", r)
	}
	r = call(`{"jsonrpc":"2.0","method":"subscribe","params":["newBlocks"],"id":3}`)
	var sub string
	_ = json.Unmarshal(r["result"], &sub)
	if !strings.HasPrefix(sub, "0x") {
		t.Fatalf("subscribe: %v", r)
	}

	b, err := ch.Mine(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, frame, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var push struct {
		Method string `json:"method"`
		Params struct {
			Subscription string `json:"subscription"`
			Result       Block  `json:"result"`
		} `json:"params"`
	}
	if err := json.Unmarshal(frame, &push); err != nil || push.Method != "subscription" || push.Params.Subscription != sub || push.Params.Result != b {
		t.Fatalf("push %s (err %v), want block %+v", frame, err, b)
	}

	if r := call(`{"jsonrpc":"2.0","method":"getblockcount","id":4}`); string(r["result"]) != "1" {
		t.Fatalf("getblockcount after a block: %v", r)
	}
	r = call(`{"jsonrpc":"2.0","method":"getbalance","params":["` + b.Miner + `"],"id":5}`)
	if string(r["result"]) != "50" {
		t.Fatalf("getbalance: %v", r)
	}
	r = call(`{"jsonrpc":"2.0","method":"getblock","params":[1],"id":6}`)
	var got Block
	if err := json.Unmarshal(r["result"], &got); err != nil || got != b {
		t.Fatalf("getblock 1: %v", r)
	}
	if err := ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

// TestRootPath: the endpoint also answers at /.
func TestRootPath(t *testing.T) {
	m := switchboard.New(switchboard.Config{})
	srv := httptest.NewServer(newHandler(m, newChain(m)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","method":"getblockcount","id":1}`))
	_, b, err := ws.Read(ctx)
	if err != nil || string(b) != `{"jsonrpc":"2.0","result":0,"id":1}` {
		t.Fatalf("got %s, %v", b, err)
	}
}
