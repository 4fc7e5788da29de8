package jsclient

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func TestSourceIsIndexJS(t *testing.T) {
	want, err := os.ReadFile("index.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Source, want) {
		t.Fatalf("Source (%d bytes) differs from index.js (%d bytes)", len(Source), len(want))
	}
	if !bytes.Contains(Source, []byte("export class Switchboard")) {
		t.Fatal("Source does not export Switchboard")
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	get := func(method string, header http.Header) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, "/switchboard.js", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := get(http.MethodGet, nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), Source) {
		t.Fatalf("GET: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/javascript; charset=utf-8",
		"Cache-Control":          "no-cache",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	tag := rec.Header().Get("ETag")
	if len(tag) < 10 || tag[0] != '"' {
		t.Fatalf("ETag %q", tag)
	}

	for _, match := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		if rec := get(http.MethodGet, http.Header{"If-None-Match": {match}}); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and no body", match, rec.Code, rec.Body.Len())
		}
	}
	if rec := get(http.MethodGet, http.Header{"If-None-Match": {`"stale"`}}); rec.Code != http.StatusOK || rec.Body.Len() != len(Source) {
		t.Errorf("stale ETag: %d with %d bytes, want 200 and the file", rec.Code, rec.Body.Len())
	}
	if rec := get(http.MethodHead, nil); rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	if rec := get(http.MethodPost, nil); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}
