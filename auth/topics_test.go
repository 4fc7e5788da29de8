package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboardrt/switchboard/auth"
)

func TestUserTopics(t *testing.T) {
	u42 := &auth.Identity{UserID: "42"}
	tests := []struct {
		name  string
		id    *auth.Identity
		topic string
		allow bool
	}{
		{"own topic", u42, "user:42", true},
		{"own subtopic", u42, "user:42:inbox", true},
		{"own nested subtopic", u42, "user:42:inbox:unread", true},
		{"other user's topic", u42, "user:7", false},
		{"other user's subtopic", u42, "user:7:inbox", false},
		{"longer id sharing prefix", u42, "user:420", false},
		{"longer id subtopic sharing prefix", u42, "user:420:x", false},
		{"user 420 on own topic", &auth.Identity{UserID: "420"}, "user:420:x", true},
		{"user 420 on user 42 topic", &auth.Identity{UserID: "420"}, "user:42", false},
		{"empty owner", u42, "user:", false},
		{"empty owner subtopic", u42, "user::x", false},
		{"identity without user ID", &auth.Identity{}, "user:", false},
		{"anonymous on user topic", nil, "user:42", false},
		{"anonymous on public topic", nil, "chat:lobby", true},
		{"public topic", u42, "chat:lobby", true},
		{"user-like but not the namespace", u42, "users:7", true},
		{"case-sensitive namespace", u42, "User:7", true},
		{"empty topic", u42, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.UserTopics(t.Context(), tt.id, tt.topic)
			if tt.allow && err != nil {
				t.Fatalf("UserTopics(%q) = %v, want allowed", tt.topic, err)
			}
			if !tt.allow && !errors.Is(err, auth.ErrForbidden) {
				t.Fatalf("UserTopics(%q) = %v, want ErrForbidden", tt.topic, err)
			}
		})
	}
}

func TestChainTopicAuthorizers(t *testing.T) {
	errBackend := errors.New("backend down")
	var calls []string
	record := func(name string, err error) auth.TopicAuthorizer {
		return func(_ context.Context, _ *auth.Identity, _ string) error {
			calls = append(calls, name)
			return err
		}
	}
	tests := []struct {
		name      string
		chain     []auth.TopicAuthorizer
		wantErr   error
		wantCalls []string
	}{
		{"empty allows", nil, nil, nil},
		{"only nils allow", []auth.TopicAuthorizer{nil, nil}, nil, nil},
		{"all allow", []auth.TopicAuthorizer{record("a", nil), nil, record("b", nil)}, nil, []string{"a", "b"}},
		{"first refuses", []auth.TopicAuthorizer{record("a", auth.ErrForbidden), record("b", nil)}, auth.ErrForbidden, []string{"a"}},
		{"second refuses", []auth.TopicAuthorizer{record("a", nil), record("b", auth.ErrForbidden), record("c", nil)}, auth.ErrForbidden, []string{"a", "b"}},
		{"other error stops too", []auth.TopicAuthorizer{record("a", errBackend), record("b", nil)}, errBackend, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = nil
			err := auth.ChainTopicAuthorizers(tt.chain...)(t.Context(), nil, "chat:lobby")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("chain error = %v, want %v", err, tt.wantErr)
			}
			if len(calls) != len(tt.wantCalls) {
				t.Fatalf("calls = %v, want %v", calls, tt.wantCalls)
			}
			for i := range calls {
				if calls[i] != tt.wantCalls[i] {
					t.Fatalf("calls = %v, want %v", calls, tt.wantCalls)
				}
			}
		})
	}
}

func TestChainWithUserTopics(t *testing.T) {
	noAdmin := func(_ context.Context, _ *auth.Identity, topic string) error {
		if topic == "admin" {
			return errors.Join(auth.ErrForbidden, errors.New("admin topic is closed"))
		}
		return nil
	}
	chain := auth.ChainTopicAuthorizers(auth.UserTopics, noAdmin)
	id := &auth.Identity{UserID: "42"}
	for topic, allow := range map[string]bool{"user:42": true, "user:7": false, "admin": false, "lobby": true} {
		err := chain(t.Context(), id, topic)
		if allow != (err == nil) {
			t.Errorf("chain(%q) = %v, want allowed=%v", topic, err, allow)
		}
		if err != nil && !errors.Is(err, auth.ErrForbidden) {
			t.Errorf("chain(%q) = %v, want ErrForbidden", topic, err)
		}
	}
}
