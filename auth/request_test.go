package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboardrt/switchboard/auth"
)

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name       string
		url        string
		authz      string
		cookie     string // value of the "sb_token" cookie, if non-empty
		cookieName string
		want       string
	}{
		{name: "nothing", url: "/ws", cookieName: "sb_token", want: ""},
		{name: "header", url: "/ws", authz: "Bearer hdr", want: "hdr"},
		{name: "header scheme case", url: "/ws", authz: "bearer hdr", want: "hdr"},
		{name: "header extra spaces", url: "/ws", authz: "  Bearer   hdr  ", want: "hdr"},
		{name: "query", url: "/ws?token=qry", want: "qry"},
		{name: "cookie", url: "/ws", cookie: "ck", cookieName: "sb_token", want: "ck"},
		{name: "header beats query and cookie", url: "/ws?token=qry", authz: "Bearer hdr", cookie: "ck", cookieName: "sb_token", want: "hdr"},
		{name: "query beats cookie", url: "/ws?token=qry", cookie: "ck", cookieName: "sb_token", want: "qry"},
		{name: "non-bearer header falls through", url: "/ws?token=qry", authz: "Basic dTpw", want: "qry"},
		{name: "empty bearer falls through", url: "/ws", authz: "Bearer ", cookie: "ck", cookieName: "sb_token", want: "ck"},
		{name: "scheme only falls through", url: "/ws?token=qry", authz: "Bearer", want: "qry"},
		{name: "empty query falls through", url: "/ws?token=", cookie: "ck", cookieName: "sb_token", want: "ck"},
		{name: "cookie ignored without name", url: "/ws", cookie: "ck", cookieName: "", want: ""},
		{name: "other cookie name", url: "/ws", cookie: "ck", cookieName: "session", want: ""},
		{name: "escaped query", url: "/ws?token=a%2Bb%3D", want: "a+b="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			if tt.authz != "" {
				r.Header.Set("Authorization", tt.authz)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "sb_token", Value: tt.cookie})
			}
			if got := auth.TokenFromRequest(r, tt.cookieName); got != tt.want {
				t.Errorf("TokenFromRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTokenFromRequestOddRequests(t *testing.T) {
	if got := auth.TokenFromRequest(nil, "c"); got != "" {
		t.Errorf("nil request: got %q", got)
	}
	r := &http.Request{Header: http.Header{}}
	if got := auth.TokenFromRequest(r, "c"); got != "" {
		t.Errorf("request without URL: got %q", got)
	}
}
