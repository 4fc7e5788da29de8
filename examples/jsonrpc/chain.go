package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
)

// TopicNewBlocks is the topic every new block is published to.
const TopicNewBlocks = "newBlocks"

// Block is one block of the toy chain.
type Block struct {
	Height  uint64 `json:"height"`
	Hash    string `json:"hash"`
	Parent  string `json:"parent"`
	Time    int64  `json:"time"`
	Miner   string `json:"miner"`
	Reward  int64  `json:"reward"`
	TxCount int    `json:"tx_count"`
}

// addresses are the accounts of the toy chain.
var addresses = []string{"alice", "bob", "carol", "dave"}

// Chain is a toy blockchain: it makes a block every interval and pays the reward to a
// random address.
type Chain struct {
	m *switchboard.Manager

	mu       sync.RWMutex
	blocks   []Block
	balances map[string]int64
}

func newChain(m *switchboard.Manager) *Chain {
	ch := &Chain{m: m, balances: map[string]int64{}}
	ch.blocks = append(ch.blocks, Block{Height: 0, Hash: hash("genesis"), Parent: "", Time: time.Now().Unix()})
	return ch
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "0x" + hex.EncodeToString(sum[:])
}

// Mine appends one block, credits its miner and publishes it to TopicNewBlocks.
func (ch *Chain) Mine(ctx context.Context) (Block, error) {
	ch.mu.Lock()
	tip := ch.blocks[len(ch.blocks)-1]
	b := Block{
		Height:  tip.Height + 1,
		Parent:  tip.Hash,
		Time:    time.Now().Unix(),
		Miner:   addresses[rand.IntN(len(addresses))],
		Reward:  50,
		TxCount: rand.IntN(20),
	}
	b.Hash = hash(fmt.Sprintf("%s/%d/%d/%s", b.Parent, b.Height, b.Time, b.Miner))
	ch.blocks = append(ch.blocks, b)
	ch.balances[b.Miner] += b.Reward
	ch.mu.Unlock()
	msg, err := switchboard.NewMessage("BLOCK", b)
	if err != nil {
		return b, err
	}
	return b, ch.m.Publish(ctx, TopicNewBlocks, msg)
}

// Run mines a block every interval until ctx ends.
func (ch *Chain) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = ch.Mine(ctx)
		}
	}
}

// Register registers the chain's methods on s.
func (ch *Chain) Register(s *jsonrpc.Server) {
	jsonrpc.Register(s, "getblockcount", func(ctx context.Context, c *switchboard.Conn, _ struct{}) (uint64, error) {
		ch.mu.RLock()
		defer ch.mu.RUnlock()
		return ch.blocks[len(ch.blocks)-1].Height, nil
	})
	jsonrpc.Register(s, "getbalance", func(ctx context.Context, c *switchboard.Conn, address string) (int64, error) {
		if address == "" {
			return 0, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "invalid params", "expected [address]")
		}
		ch.mu.RLock()
		defer ch.mu.RUnlock()
		return ch.balances[address], nil
	})
	jsonrpc.Register(s, "getblock", func(ctx context.Context, c *switchboard.Conn, height uint64) (Block, error) {
		ch.mu.RLock()
		defer ch.mu.RUnlock()
		if height >= uint64(len(ch.blocks)) {
			return Block{}, jsonrpc.NewError(ErrBlockNotFound, "block not found",
				map[string]uint64{"height": height, "tip": uint64(len(ch.blocks) - 1)})
		}
		return ch.blocks[height], nil
	})
}

// ErrBlockNotFound is the application error code of getblock for a height above the tip.
const ErrBlockNotFound = -32000

// newHandler returns the example's HTTP handler: the JSON-RPC endpoint at / and /rpc,
// the manager's default endpoint at /ws.
func newHandler(m *switchboard.Manager, ch *Chain) http.Handler {
	s := jsonrpc.NewServer()
	ch.Register(s)
	rpc := s.Handler(m)
	mux := http.NewServeMux()
	mux.Handle("/", rpc)
	mux.Handle("/rpc", rpc)
	mux.Handle("/ws", m)
	return mux
}
