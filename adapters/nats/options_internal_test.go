package nats

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard/internal/testenv"
)

// The broker pings every 15 s unless told otherwise, so a silently dead connection is
// noticed in well under a minute rather than the client's default of several.
func TestPingDefaultsAndOverride(t *testing.T) {
	url := testenv.NATSURL(t)
	cases := []struct {
		name string
		opts []nats.Option
		want time.Duration
	}{
		{"default", nil, 15 * time.Second},
		{"override", []nats.Option{nats.PingInterval(time.Minute)}, time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{URL: url, NATSOptions: tc.opts})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := b.nc.Opts.PingInterval; got != tc.want {
				t.Fatalf("PingInterval %v, want %v", got, tc.want)
			}
			if got := b.nc.Opts.MaxPingsOut; got != 2 {
				t.Fatalf("MaxPingsOut %d, want 2", got)
			}
		})
	}
}
