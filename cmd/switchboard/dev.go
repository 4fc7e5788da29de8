package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboardrt/switchboard"
)

// Dev mode only: routes for the demo page that need no API key, and an ACTION handler
// for it to talk to. None of this exists outside dev mode.

// devRoutes mounts the dev-only routes on mux.
func (s *server) devRoutes(mux *http.ServeMux) {
	// The demo page fetches its token here.
	mux.Handle("/api/dev/token", allow(http.MethodGet, s.handleDevToken))
	// The demo page's publish and notify forms. The regular /api routes keep requiring
	// the API key, which a page should not hold.
	mux.Handle("/api/dev/publish", s.devAPI(s.handlePublish))
	mux.Handle("/api/dev/notify", s.devAPI(s.handleDevNotify))
}

// devAPI wraps a dev-only POST route: method check and a same-origin check instead of
// the API key. The origin check keeps other sites open in the developer's browser
// from posting to the local server (browsers send Origin on every cross-origin POST).
func (s *server) devAPI(h http.HandlerFunc) http.Handler {
	return allow(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "cross_origin",
				"the dev routes accept requests from this server's own pages only (Origin "+
					r.Header.Get("Origin")+" is not "+r.Host+")")
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(apiReadTimeout))
		h(w, r)
	})
}

// sameOrigin reports whether r has no Origin header (not a cross-origin browser
// request: curl, a server) or one whose host is the request's Host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// devNotifyBody is the body of POST /api/dev/notify: the user, then the fields of
// POST /api/users/{id}/notify.
type devNotifyBody struct {
	User userID `json:"user"`
	notifyBody
}

// userID is a user ID given as a JSON string or number ("2" or 2).
type userID string

func (u *userID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*u = userID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New(`"user" must be a string or a number`)
	}
	*u = userID(n.String())
	return nil
}

// handleDevNotify serves POST /api/dev/notify {"user", "title", "message", "level",
// "actions"}, in dev mode only: a NOTIFICATION to every connection of the user.
func (s *server) handleDevNotify(w http.ResponseWriter, r *http.Request) {
	var body devNotifyBody
	if !s.decodeBody(w, r, &body) {
		return
	}
	user := strings.TrimSpace(string(body.User))
	if user == "" {
		writeError(w, http.StatusBadRequest, "missing_user", `"user" is required: {"user": "42", "title": …}`)
		return
	}
	s.notify(w, r, user, body.notifyBody)
}

// demoActionResult is the ACTION_RESULT payload of the demo's echo action.
type demoActionResult struct {
	OK     bool            `json:"ok"`
	Action string          `json:"action"`
	UserID *string         `json:"user_id"` // null on an anonymous connection
	Echo   json.RawMessage `json:"echo"`
}

// handleDemoAction answers ACTION messages in dev mode, so that the demo page's ACTION
// form has something to talk to: {"action": "echo", …} gets an ACTION_RESULT with the
// payload as received and the connection's user ID; any other action gets ERROR
// bad_message.
func handleDemoAction(_ context.Context, c *switchboard.Conn, msg *switchboard.Message) error {
	var req struct {
		Action string `json:"action"`
	}
	if err := msg.DecodePayload(&req); err != nil {
		return switchboard.Errorf(switchboard.CodeBadMessage, `the ACTION payload must be an object such as {"action": "echo"}`)
	}
	if req.Action != "echo" {
		if req.Action == "" {
			return switchboard.Errorf(switchboard.CodeBadMessage, `no "action" in the payload; the dev server knows only "echo"`)
		}
		return switchboard.Errorf(switchboard.CodeBadMessage, `unknown action %q; the dev server knows only "echo"`, req.Action)
	}
	res := demoActionResult{OK: true, Action: req.Action, Echo: msg.Payload}
	if len(res.Echo) == 0 {
		res.Echo = json.RawMessage("{}")
	}
	if u := c.UserID(); u != "" {
		res.UserID = &u
	}
	return c.Reply(msg, switchboard.TypeActionResult, res)
}
