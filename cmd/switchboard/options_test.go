package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
)

func TestOptionsDefaults(t *testing.T) {
	o, _, err := parseServeOptions(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "127.0.0.1:8080" || !o.Dev || o.DevSource != "auto" {
		t.Errorf("addr %q dev %v (%s), want 127.0.0.1:8080 in dev mode (auto)", o.Addr, o.Dev, o.DevSource)
	}
	if o.MaxBodySize != 1<<20 || o.ShutdownTimeout <= 0 {
		t.Errorf("max body %d, shutdown timeout %v", o.MaxBodySize, o.ShutdownTimeout)
	}
	if !reflect.DeepEqual(o.Config, switchboard.Config{}) {
		t.Errorf("limits are not left to the library: %+v", o.Config)
	}
}

func TestOptionsFlagOverridesEnv(t *testing.T) {
	env := envMap(map[string]string{
		"SWITCHBOARD_MAX_MESSAGE_SIZE": "1000",
		"SWITCHBOARD_PING_INTERVAL":    "5s",
		"SWITCHBOARD_ORIGIN":           "a.example, b.example",
		"SWITCHBOARD_ADDR":             "127.0.0.1:9999",
		"SWITCHBOARD_API_KEY":          "from-env",
		"SWITCHBOARD_REQUIRE_AUTH":     "true",
		"SWITCHBOARD_MESSAGE_RATE":     "2.5",
		"SWITCHBOARD_LOG_LEVEL":        "debug",
		"SWITCHBOARD_JWT_SECRET":       "", // empty counts as unset
	})
	o, _, err := parseServeOptions([]string{
		"--max-message-size", "2000", "--origin", "c.example", "--api-key=from-flag", "--log-level=warn",
	}, env)
	if err != nil {
		t.Fatal(err)
	}
	// Given by both: the flag wins.
	if o.Config.MaxMessageSize != 2000 || o.APIKey != "from-flag" || o.LogLevel.String() != "WARN" {
		t.Errorf("flag did not override env: max message size %d, api key %q, log level %v",
			o.Config.MaxMessageSize, o.APIKey, o.LogLevel)
	}
	if !reflect.DeepEqual(o.Config.OriginPatterns, []string{"c.example"}) {
		t.Errorf("origins %q, want the flag's only", o.Config.OriginPatterns)
	}
	// Given by the environment only.
	if o.Config.PingInterval != 5*time.Second || o.Addr != "127.0.0.1:9999" || !o.Config.RequireAuth || o.Config.MessageRate != 2.5 {
		t.Errorf("env ignored: ping %v addr %q require auth %v rate %v",
			o.Config.PingInterval, o.Addr, o.Config.RequireAuth, o.Config.MessageRate)
	}
	if o.JWTSecret != "" {
		t.Errorf("empty env var set the secret to %q", o.JWTSecret)
	}

	// Lists from the environment are split at commas; repeated flags add up.
	o, _, err = parseServeOptions([]string{"--origin", "x.example,y.example", "--origin", "z.example"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.Config.OriginPatterns, []string{"x.example", "y.example", "z.example"}) {
		t.Errorf("origins %q", o.Config.OriginPatterns)
	}
	o, _, _ = parseServeOptions(nil, env)
	if !reflect.DeepEqual(o.Config.OriginPatterns, []string{"a.example", "b.example"}) {
		t.Errorf("origins from env %q", o.Config.OriginPatterns)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad env value names the variable", nil, map[string]string{"SWITCHBOARD_SEND_QUEUE_SIZE": "lots"}, "SWITCHBOARD_SEND_QUEUE_SIZE"},
		{"bad flag value", []string{"--ping-interval", "soon"}, nil, "ping-interval"},
		{"unknown flag", []string{"--nope"}, nil, "nope"},
		{"stray argument", []string{"extra"}, nil, "extra"},
		{"negative burst", []string{"--message-burst", "-1"}, nil, "message-burst"},
		{"negative auth timeout", nil, map[string]string{"SWITCHBOARD_AUTH_TIMEOUT": "-1s"}, "auth-timeout"},
		{"bad origin pattern", []string{"--origin", "[a"}, nil, "origin"},
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0s"}, nil, "shutdown-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseServeOptions(tc.args, envMap(tc.env))
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}
	// Negative values that mean "off" are accepted.
	o, _, err := parseServeOptions([]string{"--ping-interval=-1s", "--max-message-size=-1", "--message-rate=-1"}, noEnv)
	if err != nil || o.Config.PingInterval >= 0 || o.Config.MaxMessageSize != -1 {
		t.Fatalf("negative limits: %v %+v", err, o.Config)
	}
}

func TestOptionsCompressionAndBatching(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want switchboard.CompressionMode
	}{
		{"off", switchboard.CompressionOff},
		{"no-context-takeover", switchboard.CompressionNoContextTakeover},
		{"context-takeover", switchboard.CompressionContextTakeover},
		{"Context-Takeover", switchboard.CompressionContextTakeover},
	} {
		o, _, err := parseServeOptions([]string{"--compression", tc.arg}, noEnv)
		if err != nil || o.Config.Compression != tc.want {
			t.Errorf("--compression %s: %v, mode %v, want %v", tc.arg, err, o.Config.Compression, tc.want)
		}
	}
	// The flag overrides the environment.
	o, _, err := parseServeOptions([]string{"--compression=off"},
		envMap(map[string]string{"SWITCHBOARD_COMPRESSION": "context-takeover"}))
	if err != nil || o.Config.Compression != switchboard.CompressionOff {
		t.Errorf("flag over env: %v, mode %v", err, o.Config.Compression)
	}

	o, _, err = parseServeOptions([]string{
		"--compression-threshold=-1", "--batch-max-messages=8", "--batch-max-bytes=4096", "--require-subprotocol",
	}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Config.CompressionThreshold != -1 || o.Config.BatchMaxMessages != 8 || o.Config.BatchMaxBytes != 4096 || !o.RequireSubprotocol {
		t.Errorf("threshold %d, batch %d/%d, require subprotocol %v",
			o.Config.CompressionThreshold, o.Config.BatchMaxMessages, o.Config.BatchMaxBytes, o.RequireSubprotocol)
	}
	o, _, err = parseServeOptions(nil, envMap(map[string]string{"SWITCHBOARD_REQUIRE_SUBPROTOCOL": "true"}))
	if err != nil || !o.RequireSubprotocol {
		t.Errorf("$SWITCHBOARD_REQUIRE_SUBPROTOCOL: %v, %v", err, o.RequireSubprotocol)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--compression", "gzip"}, nil, "compression"},
		{[]string{"--compression="}, nil, "compression"},
		{nil, map[string]string{"SWITCHBOARD_COMPRESSION": "max"}, "SWITCHBOARD_COMPRESSION"},
		{[]string{"--batch-max-messages=-1"}, nil, "batch-max-messages"},
		{[]string{"--batch-max-bytes=-5"}, nil, "batch-max-bytes"},
	} {
		_, _, err := parseServeOptions(tc.args, envMap(tc.env))
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: got %v, want a usage error mentioning %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestOptionsDevMode(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		dev    bool
		source string
	}{
		{nil, nil, true, "auto"},
		{[]string{"--addr", "localhost:9000"}, nil, true, "auto"},
		{[]string{"--addr", "[::1]:9000"}, nil, true, "auto"},
		{[]string{"--addr", ":8080"}, nil, false, "auto"},
		{[]string{"--addr", "0.0.0.0:8080"}, nil, false, "auto"},
		{[]string{"--addr", "10.1.2.3:8080"}, nil, false, "auto"},
		{[]string{"--dev=false"}, nil, false, "--dev"},
		{[]string{"--addr", ":8080", "--dev"}, nil, true, "--dev"},
		{nil, map[string]string{"SWITCHBOARD_DEV": "false"}, false, "$SWITCHBOARD_DEV"},
		{[]string{"--addr", ":8080"}, map[string]string{"SWITCHBOARD_DEV": "1"}, true, "$SWITCHBOARD_DEV"},
		{[]string{"--dev=false"}, map[string]string{"SWITCHBOARD_DEV": "true"}, false, "--dev"},
	} {
		name := fmt.Sprintf("%v %v", tc.args, tc.env)
		o, _, err := parseServeOptions(tc.args, envMap(tc.env))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.Dev != tc.dev || o.DevSource != tc.source {
			t.Errorf("%s: dev %v from %s, want %v from %s", name, o.Dev, o.DevSource, tc.dev, tc.source)
		}
	}
}

// kebab turns a Config field name into its flag name: MaxConnsPerUser → max-conns-per-user.
func kebab(name string) string {
	var b strings.Builder
	for i, r := range name {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 && !(name[i-1] >= 'A' && name[i-1] <= 'Z') {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

// configField is a setting of switchboard.Config: a field, or a field of a struct field
// (Inbox.Size), whose flag is named after the path (inbox-size).
type configField struct {
	reflect.StructField        // the innermost field
	index               []int  // from Config
	path                string // Inbox.Size
	flag                string // inbox-size
}

// configFields lists the settings of switchboard.Config, descending into struct fields.
func configFields() []configField {
	var out []configField
	var walk func(typ reflect.Type, index []int, path, flag string)
	walk = func(typ reflect.Type, index []int, path, flag string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx, path+f.Name+".", flag+kebab(f.Name)+"-")
				continue
			}
			out = append(out, configField{f, idx, path + f.Name, flag + kebab(f.Name)})
		}
	}
	walk(reflect.TypeFor[switchboard.Config](), nil, "", "")
	return out
}

// TestEveryConfigSettingHasAFlag sets each flag of a Config field and checks that the
// field, found by name, got the value: a field of Config without a flag, or a flag
// wired to the wrong field, fails.
func TestEveryConfigSettingHasAFlag(t *testing.T) {
	special := map[string]string{
		"OriginPatterns":          "origin",
		"InsecureSkipOriginCheck": "dev",
	}
	for _, f := range configFields() {
		name := special[f.Name]
		if name == "" {
			name = f.flag
		}
		var arg string
		var want any
		switch {
		case f.Type == reflect.TypeFor[switchboard.CompressionMode]():
			arg, want = "context-takeover", switchboard.CompressionContextTakeover
		case f.Type == reflect.TypeFor[time.Duration]():
			arg, want = "7s", 7*time.Second
		case f.Type.Kind() == reflect.Int:
			arg, want = "7", 7
		case f.Type.Kind() == reflect.Int64:
			arg, want = "7", int64(7)
		case f.Type.Kind() == reflect.Float64:
			arg, want = "7.5", 7.5
		case f.Type.Kind() == reflect.Bool:
			arg, want = "true", true
		case f.Type.Kind() == reflect.String:
			arg, want = "seven", "seven"
		case f.Type == reflect.TypeFor[[]string]():
			arg, want = "seven.example", []string{"seven.example"}
		default:
			continue // hooks, interfaces and functions are for programs, not flags
		}
		t.Run(f.path, func(t *testing.T) {
			if f.Name == "InsecureSkipOriginCheck" {
				// Set by dev mode, not stored in Config by the parser.
				o, _, err := parseServeOptions([]string{"--dev"}, noEnv)
				if err != nil || !o.Dev {
					t.Fatalf("--dev: %v", err)
				}
				return
			}
			// Through the flag, then through the environment.
			o, _, err := parseServeOptions([]string{"--" + name + "=" + arg}, noEnv)
			if err != nil {
				t.Fatalf("--%s: %v", name, err)
			}
			if got := reflect.ValueOf(o.Config).FieldByIndex(f.index).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("--%s=%s set %s to %v, want %v", name, arg, f.Name, got, want)
			}
			o, _, err = parseServeOptions(nil, envMap(map[string]string{envName(name): arg}))
			if err != nil {
				t.Fatalf("$%s: %v", envName(name), err)
			}
			if got := reflect.ValueOf(o.Config).FieldByIndex(f.index).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("$%s=%s set %s to %v, want %v", envName(name), arg, f.Name, got, want)
			}
		})
	}
}

// TestLimitDefaultsDocumented checks the library defaults printed by --help against
// the ones a Manager actually applies.
func TestLimitDefaultsDocumented(t *testing.T) {
	m := switchboard.New(switchboard.Config{Logger: discardLogger})
	applied := m.Config()
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.Config = applied
	c, _ := serveCLI(&o, noEnv)
	n := 0
	for _, d := range c.docs {
		if !d.isLimit {
			continue
		}
		n++
		want := d.libDefault
		if d.name == "compression-threshold" {
			// The manager leaves 0 and the WebSocket library picks the threshold by mode.
			want = "0"
		}
		if got := c.fs.Lookup(d.name).Value.String(); got != want {
			t.Errorf("--%s: help says the library default is %s, the library uses %s", d.name, d.libDefault, got)
		}
	}
	numeric := 0
	for _, f := range configFields() {
		if f.Type == reflect.TypeFor[switchboard.CompressionMode]() {
			continue // an enum with its own flag, not a limit
		}
		switch f.Type.Kind() {
		case reflect.Int, reflect.Int64, reflect.Float64:
			numeric++
		}
	}
	if n != numeric {
		t.Errorf("%d limits documented, Config has %d numeric fields", n, numeric)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	_, c, _ := parseServeOptions(nil, noEnv)
	for _, d := range c.docs {
		if !strings.Contains(help, "--"+d.name) {
			t.Errorf("help lacks --%s", d.name)
		}
		if d.env != "" && !strings.Contains(help, "$"+d.env) {
			t.Errorf("help lacks $%s", d.env)
		}
	}
	for _, want := range []string{"library default 65536", "negative: no limit", "loopback", "(default 127.0.0.1:8080)"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}

	var errOut bytes.Buffer
	err := run(context.Background(), []string{"--no-such-flag"}, &out, &errOut)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("unknown flag: %v, want a usage error", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); !errors.As(err, &ue) {
		t.Errorf("unknown command: %v, want a usage error", err)
	}
}
