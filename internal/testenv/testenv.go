// Package testenv finds the external services that tests run against (Redis, NATS) and
// applies the project's one rule for when they are missing: a test skips with a message
// that says how to provide the service, except when CI=true, where it fails, because CI
// must not pass by skipping.
package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"
)

// InCI reports whether the tests run in CI (CI=true), where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips t with the message, or fails it when CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg + " (skipped; with CI=true this fails)")
}

// RedisURL returns REDIS_URL (default redis://127.0.0.1:6379/0) once a PING there
// succeeds; otherwise the test is skipped, or failed in CI.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opts, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", u, err)
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		Unavailable(t, "Redis unreachable at %s (set REDIS_URL, or start redis-server): %v", u, err)
	}
	return u
}

// NATSURL returns NATS_URL (default nats://127.0.0.1:4222) once a connection there
// succeeds; otherwise the test is skipped, or failed in CI.
func NATSURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
	if err != nil {
		Unavailable(t, "no NATS server at %s (set NATS_URL, or start nats-server): %v", u, err)
	}
	nc.Close()
	return u
}
