package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/notifier"
)

// app is a local application's backend: a REST API and the front end's notification
// socket on the same port.
type app struct {
	m    *switchboard.Manager
	agg  *notifier.Aggregator
	step time.Duration // pause between the steps of the fake job

	mu      sync.Mutex
	running bool
	jobs    sync.WaitGroup
	ctx     context.Context // cancelled by Shutdown: stops a running job
	cancel  context.CancelFunc
}

// appConfig configures newApp.
type appConfig struct {
	// Origins are the host patterns browsers may connect from besides the same origin,
	// e.g. "localhost:*" for a dev server on another port.
	Origins []string
	// Step is the pause between the steps of the fake job. Default 300ms.
	Step time.Duration
	// CertFile and KeyFile, when set, make run serve https:// and wss://.
	CertFile, KeyFile string
}

func newApp(cfg appConfig) *app {
	if cfg.Step <= 0 {
		cfg.Step = 300 * time.Millisecond
	}
	m := switchboard.New(switchboard.Config{
		OriginPatterns: cfg.Origins,
		// The backlog (up to QueueSize) is handed to the front end's send queue at once.
		SendQueueSize: 1024,
	})
	a := &app{
		m:    m,
		agg:  notifier.New(m, notifier.Options{QueueSize: 500}),
		step: cfg.Step,
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// Handler returns the app's routes.
func (a *app) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", a.agg.Handler())
	mux.Handle("/api/messages", a.agg.MessagesHandler())
	mux.HandleFunc("POST /api/notify", a.notify)
	mux.HandleFunc("POST /api/job/start", a.startJob)
	mux.HandleFunc("GET /api/status", a.status)
	return mux
}

// Shutdown stops a running job and closes every socket with 1001.
func (a *app) Shutdown(ctx context.Context) error {
	a.cancel()
	a.jobs.Wait()
	return a.m.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// notify sends the notification given in the body: {"type": "…", "data": …}.
func (a *app) notify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": err.Error()})
		return
	}
	var data any
	if len(req.Data) > 0 {
		data = req.Data
	}
	if err := a.agg.Send(req.Type, data); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, notifier.ErrBadType) {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, map[string]string{"error": "not_sent", "message": err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, a.counts())
}

// startJob starts the fake long job, unless one is running.
func (a *app) startJob(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		writeJSON(w, http.StatusConflict, map[string]string{"error": "busy", "message": "a job is already running"})
		return
	}
	a.running = true
	a.jobs.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.jobs.Done()
		a.runJob(a.ctx)
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
	}()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "started"})
}

func (a *app) status(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	running := a.running
	a.mu.Unlock()
	c := a.counts()
	c["job_running"] = running
	writeJSON(w, http.StatusOK, c)
}

func (a *app) counts() map[string]any {
	return map[string]any{
		"pending":     a.agg.Pending(),
		"dropped":     a.agg.Dropped(),
		"subscribers": a.agg.Subscribers(),
	}
}

// Payloads of the job's notifications.
type (
	upgradeStep struct {
		ToVersion   int `json:"to_version"`
		TotalSteps  int `json:"total_steps"`
		CurrentStep int `json:"current_step"`
	}
	dbUpgradeStatus struct {
		StartVersion   int         `json:"start_version"`
		TargetVersion  int         `json:"target_version"`
		CurrentUpgrade upgradeStep `json:"current_upgrade"`
	}
	migrationStep struct {
		Version     int     `json:"version"`
		TotalSteps  int     `json:"total_steps"`
		CurrentStep int     `json:"current_step"`
		Description *string `json:"description"` // null when the step has none
	}
	dataMigrationStatus struct {
		StartVersion     int           `json:"start_version"`
		TargetVersion    int           `json:"target_version"`
		CurrentMigration migrationStep `json:"current_migration"`
	}
	refreshBalances struct {
		Type       string `json:"type"`
		Blockchain string `json:"blockchain"`
	}
	missingAPIKey struct {
		Service  string `json:"service"`
		Location string `json:"location,omitempty"`
	}
	newToken struct {
		TokenIdentifier string `json:"token_identifier"`
		SeenTxHash      string `json:"seen_tx_hash,omitempty"`
	}
	uploadResult struct {
		Uploaded   bool   `json:"uploaded"`
		Actionable bool   `json:"actionable"`
		Message    string `json:"message"`
	}
)

// runJob is the fake long job: a database upgrade with progress, a data migration, and
// the notifications a real app sends along the way.
func (a *app) runJob(ctx context.Context) {
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(a.step):
			return true
		}
	}
	send := func(typ string, data any) {
		if err := a.agg.Send(typ, data); err != nil {
			a.m.Config().Logger.Warn("notifier example: send failed", "type", typ, "err", err)
		}
	}
	const total = 4
	for step := 1; step <= total; step++ {
		send("db_upgrade_status", dbUpgradeStatus{StartVersion: 26, TargetVersion: 35,
			CurrentUpgrade: upgradeStep{ToVersion: 30, TotalSteps: total, CurrentStep: step}})
		if !pause() {
			return
		}
	}
	desc := "Moving history events to the new table"
	send("data_migration_status", dataMigrationStatus{StartVersion: 1, TargetVersion: 2,
		CurrentMigration: migrationStep{Version: 2, TotalSteps: 2, CurrentStep: 1, Description: &desc}})
	send("data_migration_status", dataMigrationStatus{StartVersion: 1, TargetVersion: 2,
		CurrentMigration: migrationStep{Version: 2, TotalSteps: 2, CurrentStep: 2, Description: nil}})
	if !pause() {
		return
	}
	_ = a.agg.Warning("Could not query the price of OP: rate limited, retrying later")
	_ = a.agg.Warning("Node at http://127.0.0.1:8545 is not synced")
	send("refresh_balances", refreshBalances{Type: "blockchain_balances", Blockchain: "optimism"})
	send("missing_api_key", missingAPIKey{Service: "etherscan", Location: "optimism"})
	if !pause() {
		return
	}
	send("new_evm_token_detected", []newToken{
		{TokenIdentifier: "eip155:10/erc20:0x4200000000000000000000000000000000000042", SeenTxHash: "0x5e1f"},
		{TokenIdentifier: "eip155:1/erc20:0x6B175474E89094C44Da98b954EedeAC495271d0F"},
	})
	send("database_upload_result", uploadResult{Uploaded: false, Actionable: true,
		Message: "The remote database is newer than the local one"})
}
