package main

import (
	"net/http"
	"testing"

	"github.com/switchboardrt/switchboard"
)

// TestNotifyKeepForOfflineUser: POST /api/users/{id}/notify with "keep": true keeps the
// notification for a user who is offline, and their next login gets it; without "keep"
// (and without --inbox-types) nothing is kept.
func TestNotifyKeepForOfflineUser(t *testing.T) {
	_, ts := startServer(t, testOptions())
	for _, body := range []string{
		`{"title":"not kept","message":"1"}`,
		`{"title":"kept","message":"2","keep":true}`,
		`{"title":"kept","message":"3","keep":true}`,
	} {
		if r := do(t, ts, http.MethodPost, "/api/users/alice/notify", testAPIKey, body); r.status != http.StatusOK {
			t.Fatalf("notify %s: %d %s", body, r.status, r.raw)
		}
	}
	alice := dial(t, ts)
	alice.authenticate("alice")
	for _, want := range []string{"2", "3"} {
		if p := alice.next(switchboard.TypeNotification).payload(t); p["message"] != want {
			t.Fatalf("got notification %v, want message %s", p, want)
		}
	}
	// Nothing else was kept: the next notification is a live one.
	do(t, ts, http.MethodPost, "/api/users/alice/notify", testAPIKey, `{"title":"live","message":"4"}`)
	if p := alice.next(switchboard.TypeNotification).payload(t); p["message"] != "4" {
		t.Fatalf("got notification %v, want the live one", p)
	}
}

// TestInboxTypesFlag: with --inbox-types NOTIFICATION every notification is kept for an
// offline user, and --inbox-size bounds what is kept.
func TestInboxTypesFlag(t *testing.T) {
	o := testOptions()
	o.Config.Inbox.Types = []string{switchboard.TypeNotification}
	o.Config.Inbox.Size = 2
	_, ts := startServer(t, o)
	for _, m := range []string{"1", "2", "3"} {
		if r := do(t, ts, http.MethodPost, "/api/users/bob/notify", testAPIKey, `{"message":"`+m+`"}`); r.status != http.StatusOK {
			t.Fatalf("notify: %d %s", r.status, r.raw)
		}
	}
	bob := dial(t, ts)
	bob.authenticate("bob")
	for _, want := range []string{"2", "3"} {
		if p := bob.next(switchboard.TypeNotification).payload(t); p["message"] != want {
			t.Fatalf("got notification %v, want message %s", p, want)
		}
	}
}

// TestNotifyKeepWithInboxOff: "keep" with the inbox turned off is refused, not ignored.
func TestNotifyKeepWithInboxOff(t *testing.T) {
	o := testOptions()
	o.Config.Inbox.Size = -1
	_, ts := startServer(t, o)
	r := do(t, ts, http.MethodPost, "/api/users/alice/notify", testAPIKey, `{"message":"x","keep":true}`)
	if r.status != http.StatusConflict || r.body["error"] != "inbox_off" {
		t.Fatalf("got %d %s, want 409 inbox_off", r.status, r.raw)
	}
}
