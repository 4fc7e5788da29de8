package switchboard_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

// An invitation is sent to a user who is offline; it is kept, and delivered right after
// AUTHENTICATE_SUCCESS when the user next logs in.
func ExampleManager_SendToUser() {
	secret := []byte("example secret, 32 bytes or more")
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		log.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{Authenticator: jwt})
	url, stop := exampleServe(m)
	defer stop()

	ctx := context.Background()
	for _, room := range []string{"design", "launch"} {
		invite, err := switchboard.NewEvent("invited", map[string]any{"room": room})
		if err != nil {
			log.Fatal(err)
		}
		if err := m.SendToUser(ctx, "alice", invite, switchboard.KeepIfOffline); err != nil {
			log.Fatal(err)
		}
	}

	// Later, alice logs in.
	tok, err := auth.NewHMACToken(secret, "alice", time.Hour, nil)
	if err != nil {
		log.Fatal(err)
	}
	c := exampleDial(url)
	defer c.ws.CloseNow()
	c.send(`{"type": "AUTHENTICATE", "id": "a1", "payload": {"auth": {"token": "` + tok + `"}}}`)
	ok := c.read()
	fmt.Println(ok.Type, ok.CorrelationID)
	for range 2 {
		f := c.read()
		fmt.Println(f.Type, string(f.Payload))
	}

	// Output:
	// AUTHENTICATE_SUCCESS a1
	// EVENT {"event":"invited","data":{"room":"design"}}
	// EVENT {"event":"invited","data":{"room":"launch"}}
}
