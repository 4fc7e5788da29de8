package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
	jsclient "github.com/switchboardrt/switchboard/clients/js"
)

// server is the standalone Switchboard server: a Manager at /ws, the HTTP API, the
// health check, the JavaScript client at /switchboard.js and the demo page, behind one
// http.Handler.
type server struct {
	opts    options
	log     *slog.Logger
	manager *switchboard.Manager
	handler http.Handler
	obs     observability      // metrics (observability.go)
	broker  switchboard.Broker // nil: in memory

	// apiKey is the key the /api routes require ("" disables them); apiKeyHash is its
	// SHA-256, compared in constant time with the hash of the presented key.
	apiKey     string
	apiKeyHash [sha256.Size]byte
	// jwtSecret signs the tokens of the dev token endpoint; nil when there is no secret.
	jwtSecret []byte
	// authMode describes how tokens are verified, for the startup log.
	authMode string
	// generatedAPIKey and generatedJWTSecret report keys made up in dev mode.
	generatedAPIKey    bool
	generatedJWTSecret bool
}

// newServer builds the server described by opts: it resolves the keys (generating them
// in dev mode), creates the Manager and mounts the routes. It does not listen; the
// caller serves s.handler and must call s.manager.Shutdown.
func newServer(opts options) (*server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &server{opts: opts, log: log, apiKey: opts.APIKey}

	if s.apiKey == "" && opts.Dev {
		s.apiKey, s.generatedAPIKey = randomKey(), true
	}
	if s.apiKey != "" {
		s.apiKeyHash = sha256.Sum256([]byte(s.apiKey))
	} else {
		log.Warn("no API key configured (--api-key or $" + envName("api-key") + "): the /api routes answer 503")
	}

	secret := opts.JWTSecret
	if secret == "" && opts.JWTPublicKeyFile == "" && opts.Dev {
		secret, s.generatedJWTSecret = randomKey(), true
	}
	// Nothing in the server reads a token's claims beyond the user and the expiry: keeping
	// them would cost every connection about 0.4 KiB for nothing.
	jcfg := auth.JWTConfig{Issuer: opts.JWTIssuer, Audience: opts.JWTAudience, Leeway: opts.JWTLeeway, OmitClaims: true}
	if secret != "" {
		if len(secret) < 32 && !s.generatedJWTSecret {
			log.Warn("the JWT secret is shorter than 32 bytes; use a long random secret")
		}
		s.jwtSecret = []byte(secret)
		jcfg.HMACSecret = s.jwtSecret
		s.authMode = "jwt (hmac)"
	}
	if opts.JWTPublicKeyFile != "" {
		pemBytes, err := os.ReadFile(opts.JWTPublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key: %w", err)
		}
		key, err := auth.ParsePublicKeyPEM(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key %s: %w", opts.JWTPublicKeyFile, err)
		}
		jcfg.PublicKeys = append(jcfg.PublicKeys, key)
		if s.authMode == "" {
			s.authMode = "jwt (public key)"
		} else {
			s.authMode = "jwt (hmac and public key)"
		}
	}

	cfg := opts.Config
	if s.authMode != "" {
		j, err := auth.NewJWT(jcfg)
		if err != nil {
			return nil, err
		}
		cfg.Authenticator = j
	} else {
		if cfg.RequireAuth {
			return nil, usageError{errors.New("--require-auth needs --jwt-secret or --jwt-public-key")}
		}
		s.authMode = "none"
		log.Warn("no JWT secret or public key configured (--jwt-secret, --jwt-public-key): " +
			"authentication is off, every connection is anonymous")
	}
	cfg.InsecureSkipOriginCheck = opts.Dev
	cfg.Logger = log
	if err := s.initObservability(&cfg); err != nil {
		return nil, err
	}
	broker, err := newBroker(opts, log)
	if err != nil {
		return nil, err
	}
	if broker != nil {
		cfg.Broker = broker
		s.broker = broker
	}
	s.manager = switchboard.New(cfg)
	s.obs.watch(s.manager)
	if opts.Dev {
		s.manager.Handle(switchboard.TypeAction, handleDemoAction)
	}
	s.handler = s.routes()
	return s, nil
}

// routes mounts every endpoint of the server.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.opts.RequireSubprotocol {
		// The default endpoint's subprotocols (switchboard.v1.batch, switchboard.v1), required.
		mux.Handle("/ws", s.manager.Endpoint(switchboard.EndpointConfig{RequireSubprotocol: true}))
	} else {
		mux.Handle("/ws", s.manager)
	}
	mux.Handle("/api/publish", s.api(http.MethodPost, s.handlePublish))
	mux.Handle("/api/broadcast", s.api(http.MethodPost, s.handleBroadcast))
	mux.Handle("/api/users/{id}/notify", s.api(http.MethodPost, s.handleNotify))
	s.clusterRoutes(mux)
	if s.opts.Dev {
		// Without the API key, for the demo page: token, publish, notify.
		s.devRoutes(mux)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such API route: "+r.URL.Path)
	})
	mux.Handle("/healthz", allow(http.MethodGet, s.handleHealth))
	s.observabilityRoutes(mux)
	mux.Handle("/switchboard.js", jsclient.Handler())
	mux.Handle("/{$}", allow(http.MethodGet, serveDemo))
	return mux
}

// randomKey returns 32 random bytes in hex, for generated API keys and secrets.
func randomKey() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
