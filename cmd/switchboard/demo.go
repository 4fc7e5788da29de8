package main

import (
	_ "embed"
	"net/http"
)

// demoPage is the demo page served at /: plain HTML and JavaScript speaking wire
// protocol v1 over the browser's WebSocket.
//
//go:embed static/index.html
var demoPage []byte

// serveDemo serves GET / with the demo page.
func serveDemo(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(demoPage)
}
