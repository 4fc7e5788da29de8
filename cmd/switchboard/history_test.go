package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
)

func TestOptionsHistory(t *testing.T) {
	o, _, err := parseServeOptions(nil, noEnv)
	if err != nil || o.Config.History != nil {
		t.Fatalf("default: %v, history %v, want none", err, o.Config.History)
	}
	o, _, err = parseServeOptions([]string{"--history", "news,chat:*", "--history", "orders",
		"--history-size", "5", "--history-ttl", "2s", "--recover-limit", "-1"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []switchboard.HistoryRule{
		{Pattern: "news", Size: 5, TTL: 2 * time.Second},
		{Pattern: "chat:*", Size: 5, TTL: 2 * time.Second},
		{Pattern: "orders", Size: 5, TTL: 2 * time.Second},
	}
	if !reflect.DeepEqual(o.Config.History, want) || o.Config.RecoverLimit != -1 {
		t.Fatalf("history %+v, recover limit %d", o.Config.History, o.Config.RecoverLimit)
	}
	// The environment, with the library's size and TTL.
	o, _, err = parseServeOptions(nil, envMap(map[string]string{"SWITCHBOARD_HISTORY": "feed:*"}))
	want = []switchboard.HistoryRule{{Pattern: "feed:*", Size: 100, TTL: 10 * time.Minute}}
	if err != nil || !reflect.DeepEqual(o.Config.History, want) {
		t.Fatalf("$SWITCHBOARD_HISTORY: %v, %+v", err, o.Config.History)
	}
	// A command-line list replaces the environment's.
	o, _, err = parseServeOptions([]string{"--history=news"}, envMap(map[string]string{"SWITCHBOARD_HISTORY": "feed:*"}))
	if err != nil || len(o.Config.History) != 1 || o.Config.History[0].Pattern != "news" {
		t.Fatalf("flag over env: %v, %+v", err, o.Config.History)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--history", "[a"}, "history"},
		{[]string{"--history-size", "0"}, "history-size"},
		{[]string{"--history-ttl", "-1s"}, "history-ttl"},
	} {
		_, _, err := parseServeOptions(tc.args, noEnv)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want a usage error mentioning %q", tc.args, err, tc.want)
		}
	}
}
