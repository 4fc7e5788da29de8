package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/switchboardrt/switchboard/auth"
)

func ExampleNewJWT() {
	secret := []byte("example secret, 32 bytes or more")

	a, err := auth.NewJWT(auth.JWTConfig{
		HMACSecret: secret,
		Algorithms: []string{"HS256"},
		Leeway:     30 * time.Second,
	})
	if err != nil {
		fmt.Println("config:", err)
		return
	}

	token, err := auth.NewHMACToken(secret, "42", time.Hour, map[string]any{"role": "admin"})
	if err != nil {
		fmt.Println("issue:", err)
		return
	}

	id, err := a.Authenticate(context.Background(), token)
	if err != nil {
		fmt.Println("authenticate:", err)
		return
	}
	fmt.Println("user:", id.UserID)
	fmt.Println("role:", id.Claims["role"])

	// A token signed with another secret is refused.
	forged, _ := auth.NewHMACToken([]byte("some other secret, also 32 bytes"), "42", time.Hour, nil)
	_, err = a.Authenticate(context.Background(), forged)
	fmt.Println("forged:", auth.Reason(err), errors.Is(err, auth.ErrTokenInvalid))

	_, err = a.Authenticate(context.Background(), "")
	fmt.Println("missing:", auth.Reason(err))
	// Output:
	// user: 42
	// role: admin
	// forged: invalid true
	// missing: no_token
}

func ExampleUserTopics() {
	alice := &auth.Identity{UserID: "alice"}
	for _, topic := range []string{"user:alice", "user:alice:inbox", "user:bob", "user:alice2", "chat:lobby"} {
		err := auth.UserTopics(context.Background(), alice, topic)
		fmt.Printf("alice %-17s allowed=%v\n", topic, err == nil)
	}
	err := auth.UserTopics(context.Background(), nil, "user:alice")
	fmt.Println("anonymous user:alice forbidden:", errors.Is(err, auth.ErrForbidden))
	// Output:
	// alice user:alice        allowed=true
	// alice user:alice:inbox  allowed=true
	// alice user:bob          allowed=false
	// alice user:alice2       allowed=false
	// alice chat:lobby        allowed=true
	// anonymous user:alice forbidden: true
}

func ExampleChainTopicAuthorizers() {
	readOnlyAdmin := func(_ context.Context, id *auth.Identity, topic string) error {
		if topic == "admin" && (id == nil || id.Claims["role"] != "admin") {
			return fmt.Errorf("%w: admins only", auth.ErrForbidden)
		}
		return nil
	}
	authorize := auth.ChainTopicAuthorizers(auth.UserTopics, readOnlyAdmin)

	bob := &auth.Identity{UserID: "bob", Claims: map[string]any{"role": "member"}}
	fmt.Println(authorize(context.Background(), bob, "user:bob"))
	fmt.Println(authorize(context.Background(), bob, "admin"))
	// Output:
	// <nil>
	// auth: forbidden: admins only
}

func ExampleTokenFromRequest() {
	r := httptest.NewRequest("GET", "/ws?token=from-query", nil)
	fmt.Println(auth.TokenFromRequest(r, "sb_token"))

	r.Header.Set("Authorization", "Bearer from-header")
	fmt.Println(auth.TokenFromRequest(r, "sb_token"))
	// Output:
	// from-query
	// from-header
}
