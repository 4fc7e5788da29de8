// Package jsclient embeds the Switchboard JavaScript client (index.js, an ES module with
// no dependencies) so that a Go server can serve it to pages that use no bundler:
//
//	mux.Handle("GET /switchboard.js", jsclient.Handler())
//
// and in the page:
//
//	<script type="module">
//	  import { Switchboard } from '/switchboard.js'
//	</script>
//
// The file is the same as the npm package @switchboardrt/client; see README.md.
package jsclient

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// Source is the client module, index.js, byte for byte.
//
//go:embed index.js
var Source []byte

// etag identifies Source, so that browsers revalidate cheaply.
var etag = func() string {
	sum := sha256.Sum256(Source)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// ContentType is the media type the client is served with.
const ContentType = "text/javascript; charset=utf-8"

// Handler returns an http.Handler that serves Source to GET and HEAD requests (any other
// method gets 405). The response is text/javascript with Cache-Control: no-cache and an
// ETag: browsers keep the file but ask each time whether it changed (304 when not), so a
// rebuilt server is picked up on the next page load.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(Source)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(Source)
}

// etagMatches reports whether an If-None-Match header names the current ETag (or is *).
func etagMatches(header string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
