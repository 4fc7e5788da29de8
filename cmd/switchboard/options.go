package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardrt/switchboard"
)

// compressionThresholdDefault is what --help says of the library's default threshold: the
// manager leaves 0 in Config and the WebSocket library picks by mode.
const compressionThresholdDefault = "128 with context takeover, 512 without"

// envPrefix starts the name of every environment variable the server reads.
const envPrefix = "SWITCHBOARD_"

// options is the configuration of the server command, from flags and the environment.
type options struct {
	// Addr is the listen address.
	Addr string
	// Broker is the --broker URL ("" or "memory": one node); BrokerPrefix its names' prefix.
	Broker, BrokerPrefix string
	// NodeHeartbeat and NodeTTL are the cluster broker's heartbeat interval and node TTL;
	// 0 leaves the broker's default (broker.go).
	NodeHeartbeat, NodeTTL time.Duration
	// TLSCert and TLSKey name the PEM files of the certificate and its key; both set, the
	// server serves HTTPS and wss:// (tls.go). Both or neither.
	TLSCert, TLSKey string
	// Dev turns on development mode: generated and printed keys, the dev routes
	// (token, publish, notify: no API key), the demo ACTION handler, and no origin
	// check on /ws.
	Dev bool
	// DevSource says how Dev was decided: "--dev", "$SWITCHBOARD_DEV", or "auto"
	// (from whether Addr is a loopback address).
	DevSource string
	// APIKey guards the /api routes. Empty: generated in dev mode, otherwise the API is
	// disabled (503).
	APIKey string
	// JWTSecret verifies HS256/384/512 tokens.
	JWTSecret string
	// JWTPublicKeyFile names a PEM file with a public key that verifies RS*, PS*, ES*
	// or EdDSA tokens.
	JWTPublicKeyFile string
	// JWTIssuer and JWTAudience, if set, must match the token's iss and aud claims.
	JWTIssuer   string
	JWTAudience string
	// JWTLeeway is the clock skew tolerated on exp, nbf and iat.
	JWTLeeway time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// MaxBodySize caps the body of an API request, in bytes.
	MaxBodySize int64
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// Metrics serves /metrics and Pprof /debug/pprof/ (observability.go).
	Metrics, Pprof bool
	// RequireSubprotocol makes /ws refuse (HTTP 400) clients that ask for none of its
	// WebSocket subprotocols.
	RequireSubprotocol bool
	// History turns on topic history (history.go); it becomes Config.History.
	History historyOptions
	// Config holds the manager's limits. newServer sets Authenticator, Logger, Observer and
	// InsecureSkipOriginCheck.
	Config switchboard.Config

	// Logger receives the server's logs; nil means slog.Default(). Not a flag.
	Logger *slog.Logger
}

// defaultOptions returns the options before flags and the environment are applied.
func defaultOptions() options {
	return options{
		Addr:            "127.0.0.1:8080",
		ShutdownTimeout: 10 * time.Second,
		MaxBodySize:     1 << 20,
		LogLevel:        slog.LevelInfo,
		Metrics:         true,
		History:         defaultHistory(),
	}
}

// usageError is a mistake on the command line; main exits with status 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// flagDoc is what the usage text says about one flag.
type flagDoc struct {
	name    string
	env     string // "" when the flag has no environment variable
	section string
	// def is shown as the default; "" means the flag's own zero default is not worth
	// showing (empty strings, false).
	def string
	// libDefault, for a limit of switchboard.Config, is the value the library uses for 0.
	libDefault string
	// negative, for a limit, says what a negative value means; "" when negative values
	// are refused.
	negative string
	isLimit  bool
}

// cli registers flags together with their environment variables. Values come, in
// increasing order of precedence, from the defaults, the environment (applied as each
// flag is registered) and the command line (fs.Parse).
type cli struct {
	fs      *flag.FlagSet
	getenv  func(string) (string, bool)
	docs    []*flagDoc
	section string
	errs    []error
	// nonNegative lists the flags whose value must not be negative, with a getter.
	nonNegative map[string]func() float64
}

func newCLI(name string, getenv func(string) (string, bool)) *cli {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is printed by the caller
	fs.Usage = func() {}
	return &cli{fs: fs, getenv: getenv, nonNegative: map[string]func() float64{}}
}

// envName returns the environment variable of a flag: SWITCHBOARD_ and the flag name in
// upper case with dashes as underscores.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// bind documents the flag just registered and applies its environment variable, if set
// and not empty.
func (c *cli) bind(name, env, def string) *flagDoc {
	d := &flagDoc{name: name, env: env, section: c.section, def: def}
	c.docs = append(c.docs, d)
	if env == "" {
		return d
	}
	s, ok := c.getenv(env)
	if !ok || s == "" {
		return d
	}
	v := c.fs.Lookup(name).Value
	if err := v.Set(s); err != nil {
		c.errs = append(c.errs, fmt.Errorf("invalid value %q for $%s: %v", s, env, err))
	}
	if l, ok := v.(*listValue); ok {
		l.replace = true // a list on the command line replaces the one from the environment
	}
	return d
}

func (c *cli) stringVar(p *string, name, env, usage string) *flagDoc {
	c.fs.StringVar(p, name, *p, usage)
	return c.bind(name, env, *p)
}

func (c *cli) boolVar(p *bool, name, env, usage string) *flagDoc {
	c.fs.BoolVar(p, name, *p, usage)
	def := ""
	if *p {
		def = "true"
	}
	return c.bind(name, env, def)
}

func (c *cli) durationVar(p *time.Duration, name, env, usage string) *flagDoc {
	c.fs.DurationVar(p, name, *p, usage)
	return c.bind(name, env, p.String())
}

func (c *cli) int64Var(p *int64, name, env, usage string) *flagDoc {
	c.fs.Int64Var(p, name, *p, usage)
	return c.bind(name, env, strconv.FormatInt(*p, 10))
}

// limit registers a flag for a numeric limit of switchboard.Config. libDefault is the
// library's default, used for 0; negative says what a negative value means, or "" when
// the library gives negative values no meaning (they are then refused).
func (c *cli) limit(v flag.Value, get func() float64, name, usage, libDefault, negative string) {
	c.fs.Var(v, name, usage)
	d := c.bind(name, envName(name), "0")
	d.isLimit, d.libDefault, d.negative = true, libDefault, negative
	if negative == "" {
		c.nonNegative[name] = get
	}
}

func (c *cli) intLimit(p *int, name, usage, libDefault, negative string) {
	c.limit((*intValue)(p), func() float64 { return float64(*p) }, name, usage, libDefault, negative)
}

func (c *cli) int64Limit(p *int64, name, usage, libDefault, negative string) {
	c.limit((*int64Value)(p), func() float64 { return float64(*p) }, name, usage, libDefault, negative)
}

func (c *cli) floatLimit(p *float64, name, usage, libDefault, negative string) {
	c.limit((*floatValue)(p), func() float64 { return *p }, name, usage, libDefault, negative)
}

func (c *cli) durationLimit(p *time.Duration, name, usage, libDefault, negative string) {
	c.limit((*durationValue)(p), func() float64 { return float64(*p) }, name, usage, libDefault, negative)
}

// parse parses args and reports the first error from the environment or the command
// line. -h and --help give flag.ErrHelp.
func (c *cli) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", c.fs.Arg(0))}
	}
	if len(c.errs) > 0 {
		return usageError{c.errs[0]}
	}
	for _, d := range c.docs {
		if get, ok := c.nonNegative[d.name]; ok && get() < 0 {
			return usageError{fmt.Errorf("--%s must not be negative", d.name)}
		}
	}
	return nil
}

// printFlags writes the documentation of every flag, section by section.
func (c *cli) printFlags(w io.Writer) {
	section := ""
	for _, d := range c.docs {
		if d.section != section {
			section = d.section
			fmt.Fprintf(w, "\n%s:\n", section)
		}
		f := c.fs.Lookup(d.name)
		typ, usage := flag.UnquoteUsage(f)
		if t, ok := f.Value.(interface{ typeName() string }); ok && typ == "value" {
			typ = t.typeName()
		}
		if _, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
			typ = ""
		}
		head := "  --" + d.name
		if typ != "" {
			head += " " + typ
		}
		if d.env != "" {
			head += "   $" + d.env
		}
		fmt.Fprintln(w, head)
		switch {
		case d.isLimit:
			usage += fmt.Sprintf(" (default 0: library default %s", d.libDefault)
			if d.negative != "" {
				usage += "; negative: " + d.negative
			} else {
				usage += "; must not be negative"
			}
			usage += ")"
		case d.def != "":
			usage += fmt.Sprintf(" (default %s)", d.def)
		}
		for _, line := range wrap(usage, 78) {
			fmt.Fprintln(w, "        "+line)
		}
	}
}

// wrap splits s into lines of at most width bytes, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// Value types for the limits. They parse like the flag package's own.

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return numError(err)
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string   { return strconv.Itoa(int(*v)) }
func (v *intValue) Get() any         { return int(*v) }
func (v *intValue) typeName() string { return "int" }

type int64Value int64

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return numError(err)
	}
	*v = int64Value(n)
	return nil
}
func (v *int64Value) String() string   { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Get() any         { return int64(*v) }
func (v *int64Value) typeName() string { return "int" }

type floatValue float64

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return numError(err)
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string   { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) Get() any         { return float64(*v) }
func (v *floatValue) typeName() string { return "float" }

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("parse error")
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string   { return time.Duration(*v).String() }
func (v *durationValue) Get() any         { return time.Duration(*v) }
func (v *durationValue) typeName() string { return "duration" }

func numError(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// listValue is a repeatable flag whose values may also be comma-separated.
type listValue struct {
	p       *[]string
	replace bool // the next Set replaces the list instead of appending
}

func (l *listValue) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listValue) Set(s string) error {
	if l.replace {
		*l.p = nil
		l.replace = false
	}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l.p = append(*l.p, part)
		}
	}
	return nil
}

// compressionValue is --compression: off, no-context-takeover or context-takeover.
type compressionValue switchboard.CompressionMode

var compressionNames = []string{
	switchboard.CompressionOff:               "off",
	switchboard.CompressionNoContextTakeover: "no-context-takeover",
	switchboard.CompressionContextTakeover:   "context-takeover",
}

func (v *compressionValue) Set(s string) error {
	for mode, name := range compressionNames {
		if strings.EqualFold(strings.TrimSpace(s), name) {
			*v = compressionValue(mode)
			return nil
		}
	}
	return fmt.Errorf("want %s", strings.Join(compressionNames, ", "))
}

func (v *compressionValue) String() string {
	if v == nil || int(*v) < 0 || int(*v) >= len(compressionNames) {
		return "off"
	}
	return compressionNames[*v]
}
func (v *compressionValue) Get() any         { return switchboard.CompressionMode(*v) }
func (v *compressionValue) typeName() string { return "mode" }

// devValue is --dev: a boolean that remembers whether it was given.
type devValue struct {
	v   *bool
	set *bool
}

func (d devValue) IsBoolFlag() bool { return true }
func (d devValue) String() string {
	if d.v == nil || d.set == nil || !*d.set {
		return "auto"
	}
	return strconv.FormatBool(*d.v)
}
func (d devValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("parse error")
	}
	*d.v, *d.set = b, true
	return nil
}

// serveCLI registers the flags of the server command on o. devSet reports, after
// parsing, whether --dev or $SWITCHBOARD_DEV gave a value.
func serveCLI(o *options, getenv func(string) (string, bool)) (c *cli, devSet *bool) {
	c = newCLI("switchboard", getenv)
	devSet = new(bool)

	c.section = "Server"
	c.stringVar(&o.Addr, "addr", envName("addr"), "listen `address` (host:port)")
	tlsFlags(c, o)
	brokerFlags(c, o)
	c.fs.Var(devValue{&o.Dev, devSet}, "dev",
		"development mode: generate and print an API key and a JWT secret when unset, serve "+
			"GET /api/dev/token?user=ID, POST /api/dev/publish and POST /api/dev/notify (no API "+
			"key needed), answer ACTION {\"action\": \"echo\"} for the demo page, accept "+
			"WebSocket connections from any origin. Default: on when --addr is a loopback address (127.0.0.1, ::1, "+
			"localhost), off otherwise; --dev=false turns it off. Never use it in production")
	c.bind("dev", envName("dev"), "")
	c.stringVar(&o.APIKey, "api-key", envName("api-key"),
		"`key` required as 'Authorization: Bearer <key>' on /api routes. Unset: generated "+
			"in dev mode, otherwise the API answers 503. Prefer the environment variable: "+
			"command lines show in the process list")
	c.durationVar(&o.ShutdownTimeout, "shutdown-timeout", envName("shutdown-timeout"),
		"how long to wait on SIGINT/SIGTERM for API requests to finish and WebSocket "+
			"clients to close (1001) before closing them at once")
	c.int64Var(&o.MaxBodySize, "max-body-size", envName("max-body-size"),
		"largest API request body, in `bytes`; a larger one gets 413")
	c.fs.TextVar(&o.LogLevel, "log-level", o.LogLevel, "minimum `level` logged: debug, info, warn or error")
	c.bind("log-level", envName("log-level"), "info")

	c.section = "Authentication (JWT)"
	c.stringVar(&o.JWTSecret, "jwt-secret", envName("jwt-secret"),
		"HMAC `secret` verifying HS256/HS384/HS512 tokens. Unset (and no --jwt-public-key): "+
			"generated in dev mode, otherwise authentication is off and every connection "+
			"is anonymous")
	c.stringVar(&o.JWTPublicKeyFile, "jwt-public-key", envName("jwt-public-key"),
		"PEM `file` with a public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE) verifying "+
			"RS*, PS*, ES* or EdDSA tokens; may be combined with --jwt-secret")
	c.stringVar(&o.JWTIssuer, "jwt-issuer", envName("jwt-issuer"), "if set, the `iss` claim tokens must carry")
	c.stringVar(&o.JWTAudience, "jwt-audience", envName("jwt-audience"), "if set, a value the `aud` claim of tokens must contain")
	c.durationVar(&o.JWTLeeway, "jwt-leeway", envName("jwt-leeway"), "clock skew tolerated on the exp, nbf and iat claims")
	cfg := &o.Config
	c.boolVar(&cfg.RequireAuth, "require-auth", envName("require-auth"),
		"admit only CONNECT, AUTHENTICATE, PING, PONG and DISCONNECT until a connection has "+
			"authenticated, and close connections that do not authenticate within "+
			"--auth-timeout (1008); needs a JWT secret or public key")
	c.stringVar(&cfg.TokenCookie, "token-cookie", envName("token-cookie"),
		"`name` of a cookie read for a token at the WebSocket handshake (default: cookies are not read)")
	c.durationLimit(&cfg.AuthTimeout, "auth-timeout",
		"time a connection has to authenticate when --require-auth is set", "10s", "")
	c.durationLimit(&cfg.TokenExpiryWarning, "token-expiry-warning",
		"how long before its token expires a connection gets ERROR token_expiring (at most half "+
			"the token's remaining life); at expiry it is closed with 4001", "30s", "no warning")
	c.intLimit(&cfg.MaxAuthFailures, "max-auth-failures",
		"failed AUTHENTICATE attempts before a connection is closed with 4001", "5", "no limit")

	c.section = "WebSocket limits"
	c.fs.Var(&listValue{p: &cfg.OriginPatterns}, "origin",
		"host `pattern` (path.Match syntax, e.g. '*.example.com', 'localhost:*') browsers may "+
			"connect from, besides the same origin; repeatable or comma-separated "+
			"(default: same origin only; dev mode accepts any origin)")
	c.bind("origin", envName("origin"), "")
	c.int64Limit(&cfg.MaxMessageSize, "max-message-size",
		"largest inbound message in bytes; a larger one closes the connection with 1009", "65536", "no limit")
	c.intLimit(&cfg.SendQueueSize, "send-queue-size",
		"messages queued for one connection; a connection whose queue overflows is closed "+
			"as a slow consumer (1013)", "256", "no limit")
	c.intLimit(&cfg.MaxSubscriptions, "max-subscriptions", "topics one connection may subscribe to", "128", "no limit")
	c.intLimit(&cfg.MaxTopicLength, "max-topic-length", "longest topic name, in bytes", "200", "no limit")
	c.intLimit(&cfg.MaxConnsPerUser, "max-conns-per-user", "live connections of one user", "32", "no limit")
	c.floatLimit(&cfg.ConnRatePerIP, "conn-rate-per-ip",
		"sustained connection attempts per second per client IP; more get HTTP 429", "10", "off")
	c.intLimit(&cfg.ConnBurstPerIP, "conn-burst-per-ip", "burst of connection attempts per client IP", "40", "")
	c.floatLimit(&cfg.MessageRate, "message-rate",
		"sustained inbound messages per second per connection; more are dropped with ERROR rate_limited",
		"50", "off")
	c.intLimit(&cfg.MessageBurst, "message-burst", "burst of inbound messages per connection", "100", "")
	c.intLimit(&cfg.RateLimitStrikes, "rate-limit-strikes",
		"rate-limited messages (refilled at one per second) before a connection is closed with 1008",
		"20", "never close")
	c.intLimit(&cfg.ReadBufferSize, "read-buffer-size",
		"bytes of socket read buffer per connection while it reads (larger messages bypass it)", "512", "")
	c.intLimit(&cfg.WriteBufferSize, "write-buffer-size",
		"bytes of write buffer per connection for frames the WebSocket library writes itself "+
			"(pongs, close); queued messages are gathered per batch into one write regardless", "64", "")
	c.durationLimit(&cfg.PingInterval, "ping-interval", "how often the server sends PING to each connection", "25s", "off")
	c.durationLimit(&cfg.PongTimeout, "pong-timeout",
		"a connection that sends nothing this long after a server PING is closed with 1008", "10s", "")
	c.durationLimit(&cfg.WriteTimeout, "write-timeout",
		"a connection whose socket accepts no write for this long is closed with 1013", "10s", "off")

	c.section = "Subprotocols, batching and compression"
	c.boolVar(&o.RequireSubprotocol, "require-subprotocol", envName("require-subprotocol"),
		"refuse (HTTP 400) WebSocket clients on /ws that ask for neither switchboard.v1.batch "+
			"nor switchboard.v1 (default: such clients get switchboard.v1)")
	c.intLimit(&cfg.BatchMaxMessages, "batch-max-messages",
		"most messages joined into one frame for switchboard.v1.batch clients (1: no batching)", "64", "")
	c.intLimit(&cfg.BatchMaxBytes, "batch-max-bytes",
		"largest batched frame, in bytes; a larger message goes alone", "65536", "")
	c.fs.Var((*compressionValue)(&cfg.Compression), "compression",
		"permessage-deflate for clients that offer it: off, no-context-takeover (each message "+
			"compressed alone) or context-takeover (a 32 KiB window per connection and direction)")
	c.bind("compression", envName("compression"), "off")
	c.intLimit(&cfg.CompressionThreshold, "compression-threshold",
		"smallest message compressed, in bytes; smaller ones go out as they are",
		compressionThresholdDefault, "compress every message")

	historyFlags(c, o)
	inboxFlags(c, o)
	observabilityFlags(c, o)
	return c, devSet
}

// parseServeOptions reads the options of the server command from args and the
// environment (through getenv). The returned cli prints the usage text.
func parseServeOptions(args []string, getenv func(string) (string, bool)) (options, *cli, error) {
	o := defaultOptions()
	c, devSet := serveCLI(&o, getenv)
	if err := c.parse(args); err != nil {
		return o, c, err
	}

	devFlag := false
	c.fs.Visit(func(f *flag.Flag) { devFlag = devFlag || f.Name == "dev" })
	switch {
	case devFlag:
		o.DevSource = "--dev"
	case *devSet:
		o.DevSource = "$" + envName("dev")
	default:
		o.Dev = isLoopback(o.Addr)
		o.DevSource = "auto"
	}

	if err := checkTLSOptions(o); err != nil {
		return o, c, err
	}
	if err := checkBrokerOptions(o); err != nil {
		return o, c, err
	}
	if o.ShutdownTimeout <= 0 {
		return o, c, usageError{errors.New("--shutdown-timeout must be positive")}
	}
	if o.MaxBodySize <= 0 {
		return o, c, usageError{errors.New("--max-body-size must be positive")}
	}
	if o.JWTLeeway < 0 {
		return o, c, usageError{errors.New("--jwt-leeway must not be negative")}
	}
	for _, p := range o.Config.OriginPatterns {
		if _, err := path.Match(p, ""); err != nil {
			return o, c, usageError{fmt.Errorf("--origin %q: %v", p, err)}
		}
	}
	if err := applyHistory(&o); err != nil {
		return o, c, err
	}
	return o, c, nil
}

// isLoopback reports whether the host of a listen address is a loopback address or
// "localhost". An empty host (all interfaces) is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
