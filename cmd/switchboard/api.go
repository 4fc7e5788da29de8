package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

// apiReadTimeout bounds the time to read an API request's body.
const apiReadTimeout = 30 * time.Second

// reservedTypes are the message types of the protocol's own exchanges (handshake,
// replies, keepalive, errors, disconnect). The API refuses to publish them: a client
// would take them for the server's answers.
var reservedTypes = map[string]bool{
	switchboard.TypeConnect: true, switchboard.TypeConnectAck: true,
	switchboard.TypeAuthenticate: true, switchboard.TypeAuthenticateSuccess: true,
	switchboard.TypeAuthenticateFailure: true, switchboard.TypeSubscribe: true,
	switchboard.TypeSubscribeSuccess: true, switchboard.TypeSubscribeFailure: true,
	switchboard.TypeUnsubscribe: true, switchboard.TypeUnsubscribeAck: true,
	switchboard.TypePing: true, switchboard.TypePong: true, switchboard.TypeError: true,
	switchboard.TypeDisconnect: true, switchboard.TypeAction: true,
	switchboard.TypeActionResult: true,
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError writes the JSON error body {"error": code, "message": message}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"error": code, "message": message})
}

// allow answers requests of any method other than method (and HEAD for GET) with 405.
func allow(method string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			if method == http.MethodGet {
				w.Header().Set("Allow", "GET, HEAD")
			} else {
				w.Header().Set("Allow", method)
			}
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed here; use %s", r.Method, method))
			return
		}
		h(w, r)
	})
}

// api wraps an API handler: method check, then the API key.
func (s *server) api(method string, h http.HandlerFunc) http.Handler {
	return allow(method, func(w http.ResponseWriter, r *http.Request) {
		if s.apiKey == "" {
			writeError(w, http.StatusServiceUnavailable, "api_disabled",
				"the HTTP API is disabled: start the server with --api-key or $"+envName("api-key"))
			return
		}
		if !s.validKey(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"missing or wrong API key: send 'Authorization: Bearer <API key>'")
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(apiReadTimeout))
		h(w, r)
	})
}

// validKey reports whether r carries the API key as a Bearer token. Both sides are
// hashed first so that the comparison takes the same time whatever the lengths.
func (s *server) validKey(r *http.Request) bool {
	scheme, key, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(h[:], s.apiKeyHash[:]) == 1
}

// decodeBody reads the JSON object of the request body into dst, capping the body at
// the configured size. On failure it writes the error response and returns false.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodySize)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "reading the request body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_json", "the request body is empty; send a JSON object")
		return false
	}
	if bytes.TrimSpace(body)[0] != '{' {
		writeError(w, http.StatusBadRequest, "invalid_json", "the request body must be a JSON object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			writeError(w, http.StatusBadRequest, "invalid_json",
				fmt.Sprintf("field %q must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_json", "the request body is not valid JSON: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid_json", "unexpected data after the JSON object")
		return false
	}
	return true
}

// jsonKind names the JSON kind expected for a Go kind, for error messages.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	}
	return "value of another kind"
}

// messageBody is the body of POST /api/publish and POST /api/broadcast.
type messageBody struct {
	Topic   string          `json:"topic"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// message builds the message of a publish or broadcast body: type DATA when none is
// given, the payload (a JSON object, {} when absent) sent as is. On failure it writes
// the error response and returns nil.
func (b *messageBody) message(w http.ResponseWriter) *switchboard.Message {
	typ := b.Type
	if typ == "" {
		typ = switchboard.TypeData
	}
	if reservedTypes[typ] {
		writeError(w, http.StatusBadRequest, "invalid_type",
			fmt.Sprintf("type %s is reserved for the protocol; publish DATA, EVENT, NOTIFICATION or a type of your own", typ))
		return nil
	}
	msg, err := switchboard.NewMessage(typ, b.Payload)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_payload", strings.TrimPrefix(err.Error(), "switchboard: "))
		return nil
	}
	return msg
}

// sendError writes the response for an error of Publish, Broadcast or BroadcastToUsers.
func (s *server) sendError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, switchboard.ErrInvalidTopic):
		writeError(w, http.StatusBadRequest, "invalid_topic", strings.TrimPrefix(err.Error(), "switchboard: "))
	case errors.Is(err, switchboard.ErrBadMessage):
		writeError(w, http.StatusBadRequest, "invalid_message", strings.TrimPrefix(err.Error(), "switchboard: "))
	case errors.Is(err, switchboard.ErrShutdown):
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, switchboard.ErrNotKept):
		s.log.Error("api: message not kept", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "inbox_unavailable",
			"the message went to the user's live connections, if any, but could not be kept for an offline user")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "canceled", "request canceled")
	default:
		s.log.Error("api: send failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "the message could not be sent")
	}
}

// handlePublish serves POST /api/publish {"topic", "type", "payload"}: the message goes
// to the subscribers of topic.
func (s *server) handlePublish(w http.ResponseWriter, r *http.Request) {
	var body messageBody
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.Topic == "" {
		writeError(w, http.StatusBadRequest, "missing_topic", `"topic" is required`)
		return
	}
	msg := body.message(w)
	if msg == nil {
		return
	}
	if err := s.manager.Publish(r.Context(), body.Topic, msg); err != nil {
		s.sendError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": msg.ID, "type": msg.Type, "topic": body.Topic})
}

// handleBroadcast serves POST /api/broadcast {"type", "payload"}: the message goes to
// every connection (with --require-auth, every authenticated one).
func (s *server) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	var body messageBody
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.Topic != "" {
		writeError(w, http.StatusBadRequest, "unexpected_topic",
			`a broadcast goes to every connection; use /api/publish to send to a topic`)
		return
	}
	msg := body.message(w)
	if msg == nil {
		return
	}
	if err := s.manager.Broadcast(r.Context(), msg); err != nil {
		s.sendError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": msg.ID, "type": msg.Type})
}

// notifyBody is the body of POST /api/users/{id}/notify.
type notifyBody struct {
	Title   string                           `json:"title"`
	Message string                           `json:"message"`
	Level   switchboard.Level                `json:"level"`
	Actions []switchboard.NotificationAction `json:"actions"`
	// Keep keeps the notification for the user's next login when they have no live
	// connection (switchboard.KeepIfOffline).
	Keep bool `json:"keep"`
}

// handleNotify serves POST /api/users/{id}/notify {"title", "message", "level",
// "actions", "keep"}: a NOTIFICATION to every connection of the user, kept for their next
// login if they are offline and "keep" is true (or NOTIFICATION is one of --inbox-types).
func (s *server) handleNotify(w http.ResponseWriter, r *http.Request) {
	var body notifyBody
	if !s.decodeBody(w, r, &body) {
		return
	}
	s.notify(w, r, r.PathValue("id"), body)
}

// notify validates body and sends it as a NOTIFICATION to every connection of user,
// writing the response.
func (s *server) notify(w http.ResponseWriter, r *http.Request, user string, body notifyBody) {
	if body.Title == "" && body.Message == "" {
		writeError(w, http.StatusBadRequest, "missing_field", `"title" or "message" is required`)
		return
	}
	for i, a := range body.Actions {
		if a.ID == "" || a.Label == "" {
			writeError(w, http.StatusBadRequest, "invalid_action",
				fmt.Sprintf(`actions[%d] needs an "id" and a "label"`, i))
			return
		}
	}
	msg, err := switchboard.NewNotification(switchboard.Notification{
		Title: body.Title, Message: body.Message, Level: body.Level, Actions: body.Actions,
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_level",
			`"level" must be one of info, success, warning, error`)
		return
	}
	var opts []switchboard.SendOption
	if body.Keep {
		if inboxOff(s.manager.Config()) {
			writeError(w, http.StatusConflict, "inbox_off",
				`"keep" needs the user inbox, which is off (--inbox-size or --inbox-ttl is negative)`)
			return
		}
		opts = append(opts, switchboard.KeepIfOffline)
	}
	if err := s.manager.SendToUser(r.Context(), user, msg, opts...); err != nil {
		s.sendError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":   msg.ID,
		"user": user,
		// On this node, when the notification was sent; with a cluster broker the
		// user's connections on other nodes get it too.
		"local_connections": len(s.manager.UserConns(user)),
	})
}

// handleHealth serves GET /healthz.
func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ok", "connections": s.manager.Stats().Connections}
	if s.broker != nil {
		if err := brokerHealth(r.Context(), s.broker); err != nil {
			body["status"], body["broker"] = "degraded", err.Error()
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		body["broker"] = "ok"
	}
	writeJSON(w, http.StatusOK, body)
}

// devTokenMaxTTL caps the lifetime of a dev token.
const devTokenMaxTTL = 24 * time.Hour

// handleDevToken serves GET /api/dev/token?user=ID[&ttl=1h], in dev mode only: an HS256
// token for the user, signed with the server's JWT secret.
func (s *server) handleDevToken(w http.ResponseWriter, r *http.Request) {
	if s.jwtSecret == nil {
		writeError(w, http.StatusNotImplemented, "no_secret",
			"the server verifies tokens with a public key only, so it cannot issue dev tokens")
		return
	}
	q := r.URL.Query()
	user := q.Get("user")
	if user == "" {
		writeError(w, http.StatusBadRequest, "missing_user", "the user query parameter is required: /api/dev/token?user=42")
		return
	}
	ttl := time.Hour
	if v := q.Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > devTokenMaxTTL {
			writeError(w, http.StatusBadRequest, "invalid_ttl", "ttl must be a duration between 1s and 24h, e.g. 15m")
			return
		}
		ttl = d
	}
	tok, err := issueToken(s.jwtSecret, user, ttl, nil, s.opts.JWTIssuer, s.opts.JWTAudience)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	// Check the token the way /ws will, which also gives its exact expiry.
	id, err := s.manager.Config().Authenticator.Authenticate(r.Context(), tok)
	if err != nil {
		s.log.Error("dev token: the server rejects its own token", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "the issued token does not verify: "+auth.Reason(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":      tok,
		"user_id":    id.UserID,
		"expires_at": id.ExpiresAt.Unix(),
	})
}

// issueToken signs an HS256 token for user with the given extra claims, adding iss and
// aud when issuer and audience are set.
func issueToken(secret []byte, user string, ttl time.Duration, claims map[string]any, issuer, audience string) (string, error) {
	if claims == nil {
		claims = map[string]any{}
	}
	if issuer != "" {
		claims["iss"] = issuer
	}
	if audience != "" {
		claims["aud"] = audience
	}
	return auth.NewHMACToken(secret, user, ttl, claims)
}
