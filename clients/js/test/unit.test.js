// Unit tests with a fake WebSocket and an injected clock and random source: no server, no
// real time.
import assert from 'node:assert/strict'
import { describe, it, beforeEach, afterEach } from 'node:test'

import { Switchboard, SwitchboardError, backoffDelay, defaults } from '../index.js'
import { FakeClock, fakeWebSocket, flush, handshake, seeded, sequence } from './fakes.js'

// setup makes a client on a fake socket and clock. It collects the client's errors,
// close events and states.
function setup(options = {}) {
  const clock = new FakeClock()
  const WS = fakeWebSocket()
  const client = new Switchboard('ws://test/ws', {
    WebSocket: WS,
    clock: { setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout },
    random: options.random ?? (() => 0.5),
    autoConnect: false,
    ...options,
  })
  const log = { errors: [], closes: [], states: [] }
  client.on('error', (e) => log.errors.push(e))
  client.on('close', (c) => log.closes.push(c))
  client.on('state', (s) => log.states.push(s))
  const sock = () => WS.sockets[WS.sockets.length - 1]
  return { client, clock, WS, sock, log }
}

describe('backoffDelay', () => {
  it('stays within [0, min(max, min·2^n)) and doubles its bound until the cap', () => {
    const opts = { minDelay: 500, maxDelay: 20000 }
    const ceilings = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]
    ceilings.forEach((ceiling, n) => {
      assert.equal(backoffDelay(n, { ...opts, random: () => 0 }), 0, `attempt ${n}, random 0`)
      const top = backoffDelay(n, { ...opts, random: () => 0.9999999 })
      assert.ok(top < ceiling && top >= ceiling - 1, `attempt ${n}: ${top} vs ceiling ${ceiling}`)
      assert.equal(backoffDelay(n, { ...opts, random: () => 0.5 }), ceiling / 2)
    })
    // Huge attempt counts do not overflow into Infinity/NaN.
    assert.equal(backoffDelay(10000, { ...opts, random: () => 0.5 }), 10000)
  })

  it('uses the documented defaults (0.5 s, 20 s)', () => {
    assert.equal(defaults.minDelay, 500)
    assert.equal(defaults.maxDelay, 20000)
    assert.equal(backoffDelay(0, { random: () => 0.5 }), 250)
    assert.equal(backoffDelay(20, { random: () => 0.5 }), 10000)
  })

  it('is full jitter: spread uniformly over the whole range', () => {
    const random = seeded(42)
    const ceiling = 4000 // attempt 3
    const samples = Array.from({ length: 2000 }, () => backoffDelay(3, { random }))
    const min = Math.min(...samples)
    const max = Math.max(...samples)
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length
    assert.ok(samples.every((d) => d >= 0 && d < ceiling))
    assert.ok(min < ceiling * 0.05, `min ${min}: the low end of the range is used`)
    assert.ok(max > ceiling * 0.95, `max ${max}: the high end of the range is used`)
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `mean ${mean}`)
    // Each quarter of the range gets about a quarter of the samples.
    for (let q = 0; q < 4; q++) {
      const n = samples.filter((d) => d >= (q * ceiling) / 4 && d < ((q + 1) * ceiling) / 4).length
      assert.ok(n > 400 && n < 600, `quarter ${q}: ${n}`)
    }
  })
})

describe('reconnect', () => {
  it('backs off exponentially with full jitter while connecting fails', async () => {
    const randoms = [0.5, 0.25, 0.75, 0.1, 0.9, 0.5, 0.3, 0.99]
    const { client, clock, WS, sock, log } = setup({ minDelay: 100, maxDelay: 3000, random: sequence(...randoms) })
    client.connect()
    const delays = []
    for (let n = 0; n < randoms.length; n++) {
      sock().fail()
      assert.equal(client.state, 'disconnected')
      const c = log.closes[log.closes.length - 1]
      assert.equal(c.code, 1006)
      assert.equal(c.reconnect, true)
      delays.push(c.delay)
      const expected = Math.floor(randoms[n] * Math.min(3000, 100 * 2 ** n))
      assert.equal(c.delay, expected, `attempt ${n}`)
      // Nothing happens before the delay is over; a new socket right when it is.
      const before = WS.sockets.length
      if (c.delay > 0) {
        await clock.advance(c.delay - 1)
        assert.equal(WS.sockets.length, before)
      }
      await clock.advance(1)
      assert.equal(WS.sockets.length, before + 1)
      assert.equal(client.state, 'connecting')
    }
    assert.deepEqual(delays, [50, 50, 300, 80, 1440, 1500, 900, 2970])
    client.close()
  })

  it('starts again from the smallest delay once a connection succeeded', async () => {
    const { client, clock, sock, log } = setup({ minDelay: 100, maxDelay: 10000, random: () => 0.5 })
    client.connect()
    for (let i = 0; i < 4; i++) {
      sock().fail()
      await clock.advance(log.closes[log.closes.length - 1].delay)
    }
    assert.equal(log.closes[3].delay, 400) // 0.5 · 800
    await handshake(sock())
    assert.equal(client.state, 'connected')
    sock().serverClose(1011, 'internal')
    assert.equal(log.closes[4].delay, 50) // 0.5 · 100 again
    client.close()
  })

  it('does not reconnect after close code 1000', async () => {
    const { client, clock, WS, sock, log } = setup()
    client.connect()
    await handshake(sock())
    const pending = client.request('PING')
    sock().serverClose(1000, 'bye')
    assert.equal(client.state, 'disconnected')
    assert.deepEqual(log.closes, [{ code: 1000, reason: 'bye', reconnect: false }])
    await assert.rejects(pending, { code: 'disconnected' })
    assert.deepEqual(clock.pending(), [])
    await clock.advance(60000)
    assert.equal(WS.sockets.length, 1)
    // A request now fails at once.
    await assert.rejects(client.request('PING'), { code: 'closed' })
  })

  it('does not reconnect after close(), and close() cancels a pending reconnect', async () => {
    const { client, clock, WS, sock, log } = setup()
    client.connect()
    await handshake(sock())
    client.close('done')
    assert.equal(client.state, 'disconnected')
    assert.deepEqual(sock().sentOf('DISCONNECT')[0].payload, { code: 1000, reason: 'done' })
    assert.deepEqual(sock().closedWith, { code: 1000, reason: 'done' })
    assert.equal(log.closes[0].reconnect, false)
    assert.deepEqual(clock.pending(), [])

    client.connect()
    assert.equal(WS.sockets.length, 2)
    sock().fail()
    assert.equal(clock.pending().length, 1) // the reconnect timer
    client.close()
    assert.deepEqual(clock.pending(), [])
    await clock.advance(60000)
    assert.equal(WS.sockets.length, 2)
    assert.equal(client.state, 'disconnected')
  })

  for (const code of [1001, 1013]) {
    it(`reconnects soon (jitter under minDelay) after ${code}`, async () => {
      const { client, clock, WS, sock, log } = setup({ minDelay: 500, random: () => 0.99 })
      client.connect()
      // Fail a few times first: the backoff bound has grown.
      for (let i = 0; i < 5; i++) {
        sock().fail()
        await clock.advance(log.closes[log.closes.length - 1].delay)
      }
      sock().open()
      await flush()
      sock().serverClose(code, 'going away')
      const c = log.closes[log.closes.length - 1]
      assert.equal(c.code, code)
      assert.equal(c.reconnect, true)
      assert.equal(c.delay, 495)
      const n = WS.sockets.length
      await clock.advance(495)
      assert.equal(WS.sockets.length, n + 1)
      client.close()
    })
  }

  it('reconnects with backoff after 1006, 1008, 1009 and 1011', async () => {
    for (const code of [1006, 1008, 1009, 1011]) {
      const { client, sock, log } = setup({ minDelay: 1000, random: () => 0.5 })
      client.connect()
      await handshake(sock())
      sock().serverClose(code, '')
      assert.deepEqual(log.closes, [{ code, reason: '', reconnect: true, delay: 500 }])
      client.close()
    }
  })

  it('does not reconnect after 4001 without getToken', async () => {
    const { client, clock, WS, sock, log } = setup()
    client.connect()
    await handshake(sock())
    sock().serverClose(4001, 'token expired')
    await flush()
    assert.equal(log.closes[0].reconnect, false)
    assert.equal(log.errors.length, 1)
    assert.equal(log.errors[0].code, 'unauthorized')
    assert.equal(log.errors[0].closeCode, 4001)
    await clock.advance(60000)
    assert.equal(WS.sockets.length, 1)
  })

  it('does not reconnect after 4001 or 4003 when getToken gives the same token', async () => {
    for (const code of [4001, 4003]) {
      let calls = 0
      const { client, clock, WS, sock, log } = setup({
        getToken: () => {
          calls++
          return 'same-token'
        },
      })
      client.connect()
      await handshake(sock())
      assert.equal(sock().last('AUTHENTICATE').payload.auth.token, 'same-token')
      sock().serverClose(code, 'no')
      await flush()
      assert.equal(calls, 2)
      assert.equal(log.closes[0].reconnect, false)
      assert.equal(log.errors[0].code, code === 4001 ? 'unauthorized' : 'forbidden')
      await clock.advance(60000)
      assert.equal(WS.sockets.length, 1)
      assert.equal(client.state, 'disconnected')
    }
  })

  it('reconnects after 4001 when getToken gives a new token, and uses it', async () => {
    const tokens = ['t1', 't2']
    let calls = 0
    const { client, clock, WS, sock, log } = setup({
      getToken: async () => tokens[Math.min(calls++, tokens.length - 1)],
    })
    client.connect()
    await handshake(sock())
    assert.equal(sock().last('AUTHENTICATE').payload.auth.token, 't1')
    sock().serverClose(4001, 'token expired')
    await flush()
    assert.equal(log.closes[0].reconnect, true)
    await clock.advance(log.closes[0].delay)
    assert.equal(WS.sockets.length, 2)
    await handshake(sock())
    assert.equal(sock().last('AUTHENTICATE').payload.auth.token, 't2')
    assert.equal(calls, 2) // the token fetched after the close was used, not fetched again
    assert.equal(client.state, 'authenticated')
    client.close()
  })

  it('gives up a connection that does not become ready in time', async () => {
    const { client, clock, WS, sock, log } = setup({ connectTimeout: 3000 })
    client.connect()
    await clock.advance(2999)
    assert.equal(client.state, 'connecting')
    await clock.advance(1)
    assert.equal(sock().terminated, true)
    assert.equal(log.closes[0].reconnect, true)
    await clock.advance(log.closes[0].delay)
    assert.equal(WS.sockets.length, 2)
    client.close()
  })
})

describe('keepalive', () => {
  it('answers a server PING with a PONG whose correlation_id is the ping id', async () => {
    const { client, sock } = setup()
    client.connect()
    await handshake(sock())
    sock().receive({ type: 'PING', id: 'ping-7', payload: {}, timestamp: 1 })
    const pong = sock().last('PONG')
    assert.equal(pong.correlation_id, 'ping-7')
    assert.ok(pong.id)
    client.close()
  })

  it('treats a connection silent for two ping intervals as dead', async () => {
    const { client, clock, WS, sock, log } = setup()
    client.connect()
    await handshake(sock(), { pingInterval: 1 })
    await clock.advance(1999)
    assert.equal(client.state, 'connected')
    sock().receive({ type: 'PING', id: 'p', payload: {} }) // a sign of life resets the watch
    await clock.advance(1999)
    assert.equal(client.state, 'connected')
    await clock.advance(1)
    assert.equal(client.state, 'disconnected')
    assert.equal(sock().terminated, true)
    assert.equal(log.closes[0].code, 1006)
    assert.equal(log.closes[0].reconnect, true)
    await clock.advance(log.closes[0].delay)
    assert.equal(WS.sockets.length, 2)
    client.close()
  })

  it('has no watchdog when the server does not ping', async () => {
    const { client, clock, sock } = setup()
    client.connect()
    await handshake(sock(), { pingInterval: -1e-9 }) // what a server with pings off sends
    await clock.advance(3600 * 1000)
    assert.equal(client.state, 'connected')
    client.close()
  })
})

describe('authentication and subscriptions', () => {
  it('sends CONNECT, then AUTHENTICATE, then SUBSCRIBE', async () => {
    const { client, sock, log } = setup({ getToken: () => 'tok' })
    const sub = client.subscribe('news', () => {})
    client.subscribe('user:42:orders', () => {})
    client.connect()
    sock().open()
    await flush()
    assert.deepEqual(sock().sent.map((m) => m.type), ['CONNECT'])
    sock().reply('CONNECT', 'CONNECT_ACK', { client_id: 'c1', requires_auth: false, ping_interval: 25 })
    await flush()
    assert.deepEqual(sock().sent.map((m) => m.type), ['CONNECT', 'AUTHENTICATE'])
    assert.deepEqual(sock().last('AUTHENTICATE').payload, { auth: { token: 'tok' } })
    assert.equal(client.state, 'connected')
    sock().reply('AUTHENTICATE', 'AUTHENTICATE_SUCCESS', { user_id: '42', expires_at: 1700003600 })
    await flush()
    assert.equal(client.state, 'authenticated')
    assert.equal(client.userId, '42')
    assert.equal(client.expiresAt, 1700003600)
    assert.equal(client.clientId, 'c1')
    assert.deepEqual(sock().sent.map((m) => m.type), ['CONNECT', 'AUTHENTICATE', 'SUBSCRIBE'])
    assert.deepEqual(sock().last('SUBSCRIBE').payload, { subscriptions: ['news', 'user:42:orders'] })
    sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: ['news', 'user:42:orders'] })
    await sub.ready
    assert.deepEqual(log.states, ['connecting', 'connected', 'authenticated'])
    assert.deepEqual(log.errors, [])
    client.close()
  })

  it('messages batched right behind AUTHENTICATE_SUCCESS reach handlers registered before connecting', async () => {
    const { client, sock, log } = setup({ getToken: () => 'tok' })
    const early = []
    const late = []
    client.on('notification', (p) => early.push(p.n))
    client.on('authenticated', () => client.on('notification', (p) => late.push(p.n)))
    client.connect()
    sock().open()
    await flush()
    sock().reply('CONNECT', 'CONNECT_ACK', { client_id: 'c1', requires_auth: false, ping_interval: 25 })
    await flush()
    const req = sock().last('AUTHENTICATE')
    const kept = [1, 2].map((n) => ({ type: 'NOTIFICATION', payload: { n }, id: `k${n}`, timestamp: 1 }))
    const ok = { type: 'AUTHENTICATE_SUCCESS', payload: { user_id: '42' }, id: 'a', timestamp: 1, correlation_id: req.id }
    sock().receive([ok, ...kept].map((m) => JSON.stringify(m)).join('\n'))
    await flush()
    assert.equal(client.state, 'authenticated')
    assert.deepEqual(early, [1, 2])
    assert.deepEqual(late, [], 'a handler added on authenticated comes too late for them')
    assert.deepEqual(log.errors, [])
    client.close()
  })

  it('authenticates when the server requires it, and stops without getToken', async () => {
    const { client, clock, WS, sock, log } = setup()
    client.connect()
    await handshake(sock(), { requiresAuth: true })
    assert.equal(client.state, 'disconnected')
    assert.equal(log.errors[0].code, 'unauthorized')
    await clock.advance(60000)
    assert.equal(WS.sockets.length, 1)
  })

  it('connects anonymously when getToken gives no token and none is required', async () => {
    const { client, sock } = setup({ getToken: () => null })
    client.subscribe('news', () => {})
    client.connect()
    await handshake(sock())
    assert.equal(client.state, 'connected')
    assert.equal(sock().sentOf('AUTHENTICATE').length, 0)
    assert.equal(sock().sentOf('SUBSCRIBE').length, 1)
    client.close()
  })

  it('retries AUTHENTICATE with a new token, and gives up on the same one', async () => {
    const tokens = ['bad', 'good']
    let calls = 0
    const { client, sock } = setup({ getToken: () => tokens[Math.min(calls++, 1)] })
    client.connect()
    sock().open()
    await flush()
    sock().reply('CONNECT', 'CONNECT_ACK', { client_id: 'c', requires_auth: true, ping_interval: 25 })
    await flush()
    sock().reply('AUTHENTICATE', 'AUTHENTICATE_FAILURE', { reason: 'expired' })
    await flush()
    assert.equal(sock().last('AUTHENTICATE').payload.auth.token, 'good')
    sock().reply('AUTHENTICATE', 'AUTHENTICATE_SUCCESS', { user_id: '1' })
    await flush()
    assert.equal(client.state, 'authenticated')
    client.close()

    const stuck = setup({ getToken: () => 'bad' })
    stuck.client.connect()
    stuck.sock().open()
    await flush()
    stuck.sock().reply('CONNECT', 'CONNECT_ACK', { client_id: 'c', requires_auth: true, ping_interval: 25 })
    await flush()
    stuck.sock().reply('AUTHENTICATE', 'AUTHENTICATE_FAILURE', { reason: 'invalid' })
    await flush()
    assert.equal(stuck.sock().sentOf('AUTHENTICATE').length, 1)
    assert.equal(stuck.client.state, 'disconnected')
    assert.equal(stuck.log.errors[0].code, 'auth_failed')
    assert.equal(stuck.log.errors[0].reason, 'invalid')
    await stuck.clock.advance(60000)
    assert.equal(stuck.WS.sockets.length, 1)
  })

  it('reconnects with backoff when getToken throws', async () => {
    let calls = 0
    const { client, clock, WS, sock, log } = setup({
      getToken: async () => {
        if (calls++ === 0) throw new Error('auth server down')
        return 'tok'
      },
    })
    client.connect()
    await handshake(sock(), { auth: false })
    assert.equal(log.errors[0].code, 'token_error')
    assert.equal(log.errors[0].cause.message, 'auth server down')
    assert.equal(log.closes[0].reconnect, true)
    await clock.advance(log.closes[0].delay)
    assert.equal(WS.sockets.length, 2)
    await handshake(sock())
    assert.equal(client.state, 'authenticated')
    client.close()
  })

  it('refreshes the token in place on ERROR token_expiring', async () => {
    const reasons = []
    const { client, WS, sock, log } = setup({
      getToken: ({ reason }) => {
        reasons.push(reason)
        return `token-${reasons.length}`
      },
    })
    const auths = []
    client.on('authenticated', (a) => auths.push(a))
    const got = []
    client.subscribe('news', (p) => got.push(p.n))
    client.connect()
    await handshake(sock())
    sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: ['news'] })
    sock().receive({ type: 'ERROR', payload: { code: 'token_expiring', message: 'token expires in 30s' }, id: 'e' })
    await flush()
    assert.deepEqual(reasons, ['connect', 'refresh'])
    assert.equal(sock().last('AUTHENTICATE').payload.auth.token, 'token-2')
    sock().reply('AUTHENTICATE', 'AUTHENTICATE_SUCCESS', { user_id: '42', expires_at: 1700007200 })
    await flush()
    assert.equal(client.expiresAt, 1700007200)
    assert.deepEqual(
      auths.map((a) => a.refreshed),
      [false, true],
    )
    sock().receive({ type: 'DATA', topic: 'news', payload: { n: 1 }, id: 'd' })
    assert.deepEqual(got, [1])
    assert.equal(WS.sockets.length, 1)
    assert.equal(sock().sentOf('SUBSCRIBE').length, 1) // nothing resubscribed
    assert.deepEqual(log.errors, [])
    assert.equal(client.state, 'authenticated')
    client.close()
  })

  it('restores subscriptions after a reconnect, without the ones unsubscribed', async () => {
    const { client, clock, sock, log } = setup()
    const a = client.subscribe('a', () => {})
    const b = client.subscribe('b', () => {})
    client.subscribe('b', () => {})
    client.connect()
    await handshake(sock())
    assert.deepEqual(sock().last('SUBSCRIBE').payload.subscriptions, ['a', 'b'])
    sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: ['a', 'b'] })
    await Promise.all([a.ready, b.ready])
    a.unsubscribe()
    assert.deepEqual(sock().last('UNSUBSCRIBE').payload.subscriptions, ['a'])
    b.unsubscribe() // another handler of b remains: no UNSUBSCRIBE
    assert.equal(sock().sentOf('UNSUBSCRIBE').length, 1)
    client.subscribe('c', () => {})
    assert.deepEqual(sock().last('SUBSCRIBE').payload.subscriptions, ['c'])

    sock().fail()
    await clock.advance(log.closes[0].delay)
    await handshake(sock())
    assert.deepEqual(sock().sentOf('SUBSCRIBE').map((m) => m.payload.subscriptions), [['b', 'c']])
    assert.deepEqual(client.topics, ['b', 'c'])
    client.close()
  })

  it('reports a refused topic and retries the others of the batch', async () => {
    const { client, sock, log } = setup()
    const ok = client.subscribe('news', () => {})
    const bad = client.subscribe('user:7:updates', () => {})
    client.connect()
    await handshake(sock())
    sock().reply('SUBSCRIBE', 'SUBSCRIBE_FAILURE', {
      subscriptions: ['user:7:updates'],
      reason: 'forbidden',
      errors: { 'user:7:updates': 'forbidden' },
      message: 'topic reserved',
    })
    await flush()
    await assert.rejects(bad.ready, (err) => err instanceof SwitchboardError && err.code === 'forbidden' && err.topic === 'user:7:updates')
    assert.equal(bad.closed, true)
    assert.equal(log.errors[0].code, 'forbidden')
    assert.deepEqual(sock().last('SUBSCRIBE').payload.subscriptions, ['news'])
    sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: ['news'] })
    await ok.ready
    assert.deepEqual(client.topics, ['news'])
    client.close()
  })
})

describe('requests', () => {
  it('resolves with the reply, rejects on ERROR with its code', async () => {
    const { client, sock } = setup()
    client.connect()
    await handshake(sock())
    const p = client.request('PING')
    const req = sock().last('PING')
    sock().receive({ type: 'PONG', payload: {}, id: 's1', correlation_id: req.id })
    const reply = await p
    assert.equal(reply.type, 'PONG')
    assert.equal(reply.correlation_id, req.id)

    const a = client.action({ action: 'cancel' })
    assert.deepEqual(sock().last('ACTION').payload, { action: 'cancel' })
    sock().reply('ACTION', 'ERROR', { code: 'unknown_type', message: 'no handler for message type "ACTION"' })
    await assert.rejects(a, (err) => err instanceof SwitchboardError && err.code === 'unknown_type')

    const b = client.action({ action: 'ok' })
    sock().reply('ACTION', 'ACTION_RESULT', { ok: true })
    assert.deepEqual(await b, { ok: true })
    client.close()
  })

  it('times out, on the injected clock', async () => {
    const { client, clock, sock } = setup()
    client.connect()
    await handshake(sock())
    const p = client.request('SLOW', {}, { timeout: 1500 })
    let settled = false
    p.catch(() => {}).finally(() => (settled = true))
    await clock.advance(1499)
    assert.equal(settled, false)
    await clock.advance(1)
    await assert.rejects(p, { code: 'timeout' })
    // A late reply is ignored.
    sock().reply('SLOW', 'SLOW_RESULT', {})
    client.close()
  })

  it('waits for the connection, then sends', async () => {
    const { client, sock } = setup({ getToken: () => 't' })
    const p = client.request('PING')
    client.send('HELLO', { x: 1 })
    client.connect()
    assert.equal(client.state, 'connecting')
    await handshake(sock(), { auth: true })
    // Nothing of the application's before the connection is authenticated.
    assert.deepEqual(sock().sent.map((m) => m.type), ['CONNECT', 'AUTHENTICATE', 'PING', 'HELLO'])
    assert.deepEqual(sock().last('HELLO').payload, { x: 1 })
    sock().reply('PING', 'PONG')
    assert.equal((await p).type, 'PONG')
    client.close()
  })

  it('rejects requests in flight when the connection drops, and everything on close()', async () => {
    const { client, sock } = setup()
    client.connect()
    await handshake(sock())
    const inFlight = client.request('PING')
    sock().fail()
    await assert.rejects(inFlight, { code: 'disconnected' })
    const queued = client.request('PING')
    client.close()
    await assert.rejects(queued, { code: 'closed' })
  })
})

describe('handlers', () => {
  it('keeps delivering when a handler throws, and reports it as an error event', async () => {
    const { client, sock, log } = setup()
    const got = []
    client.subscribe('news', () => {
      throw new Error('boom')
    })
    client.subscribe('news', (p) => got.push(p.n))
    client.on('data', () => {
      throw new Error('bang')
    })
    const data = []
    client.on('data', (p, msg) => data.push([p.n, msg.topic]))
    client.connect()
    await handshake(sock())
    sock().receive({ type: 'DATA', topic: 'news', payload: { n: 1 }, id: '1' })
    sock().receive({ type: 'DATA', topic: 'news', payload: { n: 2 }, id: '2' })
    assert.deepEqual(got, [1, 2])
    assert.deepEqual(data, [
      [1, 'news'],
      [2, 'news'],
    ])
    assert.deepEqual(
      log.errors.map((e) => [e.code, e.cause.message]),
      [
        ['handler_error', 'boom'],
        ['handler_error', 'bang'],
        ['handler_error', 'boom'],
        ['handler_error', 'bang'],
      ],
    )
    client.close()
  })

  it('does not recurse when an error handler throws', async (t) => {
    const logged = []
    t.mock.method(console, 'error', (...args) => logged.push(args))
    const { client, sock } = setup()
    let calls = 0
    client.on('error', () => {
      calls++
      throw new Error('error handler broke')
    })
    client.on('NOTIFICATION', () => {
      throw new Error('first')
    })
    client.connect()
    await handshake(sock())
    sock().receive({ type: 'NOTIFICATION', payload: { title: 't' }, id: '1' })
    assert.equal(calls, 1)
    assert.equal(logged.length, 1)
    assert.match(String(logged[0][0]), /'error' handler threw/)
    // Still working.
    const seen = []
    client.on('notification', (p) => seen.push(p.title))
    sock().receive({ type: 'NOTIFICATION', payload: { title: 'again' }, id: '2' })
    assert.deepEqual(seen, ['again'])
    client.close()
  })

  it('supports on/off/once and aliases for DATA, EVENT, NOTIFICATION', async () => {
    const { client, sock } = setup()
    const seen = []
    const h = (p, m) => seen.push(m.type)
    client.on('event', h)
    client.on('CUSTOM', h)
    client.once('data', h)
    const off = client.on('message', (m) => seen.push(`msg:${m.type}`))
    client.connect()
    await handshake(sock())
    off()
    sock().receive({ type: 'EVENT', payload: {}, id: '1' })
    sock().receive({ type: 'DATA', payload: {}, id: '2' })
    sock().receive({ type: 'DATA', payload: {}, id: '3' })
    sock().receive({ type: 'CUSTOM', id: '4' }) // no payload: liberal in what is accepted
    client.off('EVENT', h)
    sock().receive({ type: 'EVENT', payload: {}, id: '5' })
    sock().receive('not json')
    sock().receive({ no: 'type' })
    assert.deepEqual(seen.filter((s) => !s.startsWith('msg:')), ['EVENT', 'DATA', 'CUSTOM'])
    client.close()
  })
})

describe('subprotocols', () => {
  it('asks for the batch subprotocol first and splits batched frames', async () => {
    const { client, sock, log } = setup()
    const got = []
    client.on('message', (m) => got.push(m))
    client.connect()
    assert.deepEqual(sock().protocols, ['switchboard.v1.batch', 'switchboard.v1'])
    assert.equal(client.protocol, null)
    await handshake(sock())
    assert.equal(client.protocol, 'switchboard.v1.batch')
    got.length = 0
    const data = []
    client.on('data', (p, m) => data.push([p.n, m.topic]))
    const env = (n) => JSON.stringify({ type: 'DATA', topic: 'news', id: `m${n}`, timestamp: 1, payload: { n } })
    sock().receive(`${env(1)}\n${env(2)}\n${env(3)}`)
    assert.deepEqual(
      got.map((m) => m.id),
      ['m1', 'm2', 'm3'],
    )
    assert.deepEqual(data, [
      [1, 'news'],
      [2, 'news'],
      [3, 'news'],
    ])
    // Empty lines are skipped; a bad line is reported and does not stop the others.
    sock().receive(`${env(4)}\n\nnot json\n${env(5)}\n`)
    assert.deepEqual(
      got.map((m) => m.id),
      ['m1', 'm2', 'm3', 'm4', 'm5'],
    )
    assert.deepEqual(
      log.errors.map((e) => e.code),
      ['bad_message'],
    )
    // One message per frame on the way out.
    const before = sock().sent.length
    client.send('CHAT', { a: 1 })
    client.send('CHAT', { a: 2 })
    assert.equal(sock().sent.length, before + 2)
    client.close()
    assert.equal(client.protocol, null)
  })

  it('with batching: false asks for switchboard.v1 only and does not split frames', async () => {
    const { client, sock, log } = setup({ batching: false })
    const got = []
    client.on('message', (m) => got.push(m))
    client.connect()
    assert.deepEqual(sock().protocols, ['switchboard.v1'])
    await handshake(sock())
    assert.equal(client.protocol, 'switchboard.v1')
    got.length = 0
    sock().receive('{"type":"DATA","payload":{"n":1}}\n{"type":"DATA","payload":{"n":2}}')
    assert.equal(got.length, 0)
    assert.deepEqual(
      log.errors.map((e) => e.code),
      ['bad_message'],
    )
    client.close()
  })

  it('reports an empty protocol when the server chose none', async () => {
    const { client, sock } = setup()
    client.connect()
    sock().open('')
    await flush()
    assert.equal(client.protocol, '')
    client.close()
  })
})

describe('construction', () => {
  let saved
  beforeEach(() => {
    saved = globalThis.WebSocket
  })
  afterEach(() => {
    globalThis.WebSocket = saved
  })

  it('needs a WebSocket implementation', () => {
    delete globalThis.WebSocket
    assert.throws(() => new Switchboard('ws://x/ws', { autoConnect: false }), /WebSocket/)
  })

  it('uses the global WebSocket, accepts http(s) URLs, and states its initial state', () => {
    const WS = fakeWebSocket()
    globalThis.WebSocket = WS
    const client = new Switchboard('https://example.com/ws')
    assert.equal(WS.sockets[0].url, 'wss://example.com/ws')
    assert.equal(client.state, 'connecting')
    client.close()
    const idle = new Switchboard(new URL('http://example.com/ws'), { autoConnect: false })
    assert.equal(idle.state, 'disconnected')
    assert.equal(WS.sockets.length, 1)
  })
})

describe('history recovery', () => {
  // pub is a publication to topic at seq/epoch, with payload {n}.
  const pub = (topic, seq, epoch, n = seq) => ({ type: 'EVENT', payload: { n }, id: `p${seq}`, timestamp: 1, topic, seq, epoch })

  // connected returns a client subscribed to topics, with the handshake and SUBSCRIBE done
  // (the SUBSCRIBE_SUCCESS payload given), and an inbox of what the handlers got.
  async function connected(topics, success, options = {}) {
    const t = setup(options)
    const got = []
    const recoveries = []
    const subs = {}
    for (const topic of topics) {
      subs[topic] = [t.client.subscribe(topic, (payload) => got.push(`${topic}:${payload.n}`), options.subscribe)]
    }
    t.client.on('recovery', (info) => recoveries.push(info))
    t.client.connect()
    await handshake(t.sock())
    t.sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: topics, ...success })
    await flush()
    return { ...t, got, recoveries, subs }
  }

  // reconnect drops the socket and plays the handshake of the next one.
  async function reconnect({ clock, sock, log }) {
    sock().fail()
    await clock.advance(log.closes[log.closes.length - 1].delay)
    await handshake(sock())
  }

  it('tracks positions, recovers after a reconnect, and drops what it has had', async () => {
    const t = await connected(['news', 'plain'], { positions: { news: { seq: 40, epoch: 'e1' } } })
    assert.deepEqual(t.client.position('news'), { seq: 40, epoch: 'e1' })
    assert.equal(t.client.position('plain'), null) // no history on the server
    t.sock().receive(pub('news', 41, 'e1'))
    t.sock().receive({ type: 'EVENT', payload: { n: 1 }, topic: 'plain' })
    assert.deepEqual(t.client.position('news'), { seq: 41, epoch: 'e1' })

    await reconnect(t)
    const sub = t.sock().last('SUBSCRIBE').payload
    assert.deepEqual(sub, { subscriptions: ['news', 'plain'], recover: { news: { seq: 41, epoch: 'e1' } } })
    // The server answers, then sends the missed publications (and a live one that overlaps).
    t.sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', {
      subscriptions: ['news', 'plain'],
      recovered: { news: true },
      positions: { news: { seq: 43, epoch: 'e1' } },
    })
    await flush()
    assert.deepEqual(t.client.position('news'), { seq: 41, epoch: 'e1' }, 'kept until the recovered publications arrive')
    for (const seq of [42, 43, 43, 42, 44]) t.sock().receive(pub('news', seq, 'e1'))
    assert.deepEqual(t.got, ['news:41', 'plain:1', 'news:42', 'news:43', 'news:44'])
    assert.deepEqual(t.recoveries, [
      { topic: 'news', recovered: true, since: { seq: 41, epoch: 'e1' }, position: { seq: 43, epoch: 'e1' } },
    ])
    assert.deepEqual(t.client.position('news'), { seq: 44, epoch: 'e1' })
    assert.deepEqual(t.log.errors, [])
    t.client.close()
  })

  it('works when the recovered publications come before the reply', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 5, epoch: 'e' } } })
    await reconnect(t)
    t.sock().receive(pub('news', 6, 'e'))
    t.sock().receive(pub('news', 7, 'e'))
    t.sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: ['news'], recovered: { news: true }, positions: { news: { seq: 7, epoch: 'e' } } })
    await flush()
    t.sock().receive(pub('news', 7, 'e'))
    t.sock().receive(pub('news', 8, 'e'))
    assert.deepEqual(t.got, ['news:6', 'news:7', 'news:8'])
    assert.equal(t.recoveries[0].recovered, true)
    t.client.close()
  })

  it('reports a failed recovery and continues from the new epoch', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 3, epoch: 'old' } } })
    await reconnect(t)
    t.sock().reply('SUBSCRIBE', 'SUBSCRIBE_SUCCESS', { subscriptions: ['news'], recovered: { news: false }, positions: { news: { seq: 2, epoch: 'new' } } })
    await flush()
    assert.deepEqual(t.recoveries, [{ topic: 'news', recovered: false, since: { seq: 3, epoch: 'old' }, position: { seq: 2, epoch: 'new' } }])
    assert.deepEqual(t.client.position('news'), { seq: 2, epoch: 'new' })
    t.sock().receive(pub('news', 2, 'new')) // before the position: had (the app reloads the state)
    t.sock().receive(pub('news', 3, 'new'))
    assert.deepEqual(t.got, ['news:3'])
    await reconnect(t)
    assert.deepEqual(t.sock().last('SUBSCRIBE').payload.recover, { news: { seq: 3, epoch: 'new' } })
    t.client.close()
  })

  it('asks for recovery on the first SUBSCRIBE with the since option', async () => {
    const t = await connected(['feed'], { recovered: { feed: true }, positions: { feed: { seq: 12, epoch: 'x' } } }, {
      subscribe: { since: { seq: 10, epoch: 'x' } },
    })
    assert.deepEqual(t.sock().last('SUBSCRIBE').payload.recover, { feed: { seq: 10, epoch: 'x' } })
    assert.deepEqual(t.recoveries.map((r) => [r.topic, r.recovered]), [['feed', true]])
    t.client.close()
  })

  it('with recover: false, never asks for recovery', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 5, epoch: 'e' } } }, { recover: false })
    t.sock().receive(pub('news', 6, 'e'))
    await reconnect(t)
    assert.equal(t.sock().last('SUBSCRIBE').payload.recover, undefined)
    t.client.close()
  })

  it('on a jump in seq, resubscribes with recover and gets the missed publications in order', async () => {
    const t = await connected(['news', 'plain'], { positions: { news: { seq: 4, epoch: 'e' } } })
    t.sock().receive(pub('news', 5, 'e'))
    t.sock().receive(pub('news', 8, 'e')) // 6 and 7 lost on the way
    t.sock().receive(pub('news', 9, 'e')) // the old subscription goes on until UNSUBSCRIBE
    t.sock().receive({ type: 'JOIN', payload: { n: 'j' }, topic: 'news' }) // no position: passes
    assert.deepEqual(t.got, ['news:5', 'news:j'])
    assert.deepEqual(t.client.position('news'), { seq: 5, epoch: 'e' })
    const sent = t.sock().sent.slice(-2)
    assert.deepEqual(sent.map((m) => [m.type, m.payload]), [
      ['UNSUBSCRIBE', { subscriptions: ['news'] }],
      ['SUBSCRIBE', { subscriptions: ['news'], recover: { news: { seq: 5, epoch: 'e' } } }],
    ])
    t.sock().reply('UNSUBSCRIBE', 'UNSUBSCRIBE_ACK', { subscriptions: ['news'] })
    // The answer and the recovered publications in one batch frame: they go in order.
    const req = t.sock().last('SUBSCRIBE')
    const success = { type: 'SUBSCRIBE_SUCCESS', id: 's', timestamp: 1, correlation_id: req.id,
      payload: { subscriptions: ['news'], recovered: { news: true }, positions: { news: { seq: 9, epoch: 'e' } } } }
    t.sock().receive([success, ...[6, 7, 8, 9, 10].map((seq) => pub('news', seq, 'e'))].map((m) => JSON.stringify(m)).join('\n'))
    await flush()
    assert.deepEqual(t.got, ['news:5', 'news:j', 'news:6', 'news:7', 'news:8', 'news:9', 'news:10'])
    assert.deepEqual(t.recoveries, [{ topic: 'news', recovered: true, since: { seq: 5, epoch: 'e' }, position: { seq: 9, epoch: 'e' } }])
    assert.deepEqual(t.client.position('news'), { seq: 10, epoch: 'e' })
    assert.equal(t.sock().sentOf('SUBSCRIBE').length, 2, 'one resubscription')
    assert.deepEqual(t.log.errors, [])
    t.client.close()
  })

  it('on a jump it cannot recover, reports recovered: false and goes on from the server position', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 1, epoch: 'e' } } })
    t.sock().receive(pub('news', 4, 'e'))
    t.sock().reply('UNSUBSCRIBE', 'UNSUBSCRIBE_ACK', { subscriptions: ['news'] })
    const req = t.sock().last('SUBSCRIBE')
    assert.deepEqual(req.payload.recover, { news: { seq: 1, epoch: 'e' } })
    const success = { type: 'SUBSCRIBE_SUCCESS', id: 's', timestamp: 1, correlation_id: req.id,
      payload: { subscriptions: ['news'], recovered: { news: false }, positions: { news: { seq: 4, epoch: 'e' } } } }
    // Live publications right behind the answer, in the same frame, are not taken for a jump.
    t.sock().receive([success, pub('news', 5, 'e')].map((m) => JSON.stringify(m)).join('\n'))
    await flush()
    t.sock().receive(pub('news', 6, 'e'))
    assert.deepEqual(t.got, ['news:5', 'news:6'])
    assert.deepEqual(t.recoveries, [{ topic: 'news', recovered: false, since: { seq: 1, epoch: 'e' }, position: { seq: 4, epoch: 'e' } }])
    assert.equal(t.sock().sentOf('SUBSCRIBE').length, 2)
    t.client.close()
  })

  it('on a new epoch that does not start at seq 1, recovers it from its start', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 7, epoch: 'old' } } })
    t.sock().receive(pub('news', 1, 'new')) // a new epoch from seq 1: fine
    t.sock().receive(pub('news', 2, 'new'))
    t.sock().receive(pub('news', 1, 'newer'))
    assert.deepEqual(t.got, ['news:1', 'news:2', 'news:1'])
    assert.equal(t.sock().sentOf('SUBSCRIBE').length, 1, 'no resubscription')
    t.sock().receive(pub('news', 3, 'newest')) // 1 and 2 of that epoch lost
    assert.deepEqual(t.sock().last('SUBSCRIBE').payload.recover, { news: { seq: 0, epoch: 'newest' } })
    t.client.close()
  })

  it('a jump while the resubscription is in flight, or a drop, does not pile up requests', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 1, epoch: 'e' } } })
    t.sock().receive(pub('news', 3, 'e'))
    t.sock().receive(pub('news', 5, 'e'))
    assert.equal(t.sock().sentOf('SUBSCRIBE').length, 2)
    assert.deepEqual(t.got, [])
    await reconnect(t) // the resubscription is lost with the socket: the reconnect recovers
    assert.deepEqual(t.sock().last('SUBSCRIBE').payload.recover, { news: { seq: 1, epoch: 'e' } })
    assert.equal(t.sock().sentOf('SUBSCRIBE').length, 1)
    t.client.close()
  })

  it('with recover: false, a jump is delivered as it is', async () => {
    const t = await connected(['news'], { positions: { news: { seq: 1, epoch: 'e' } } }, { recover: false })
    t.sock().receive(pub('news', 4, 'e'))
    assert.deepEqual(t.got, ['news:4'])
    assert.equal(t.sock().sentOf('UNSUBSCRIBE').length, 0)
    t.client.close()
  })

  it('ignores malformed positions, and forgets a topic’s position when unsubscribed', async () => {
    const t = await connected(['a', 'b', 'c', 'd'], {
      positions: { a: { seq: '5', epoch: 'e' }, b: { seq: -1, epoch: 'e' }, c: { seq: 5 }, d: [1, 'e'] },
    })
    for (const topic of ['a', 'b', 'c', 'd']) assert.equal(t.client.position(topic), null, topic)
    t.sock().receive({ ...pub('a', 1, 'e'), seq: 2 ** 60 }) // beyond exact JS integers: no position
    t.sock().receive(pub('b', 1, ''))
    assert.equal(t.client.position('a'), null)
    assert.equal(t.client.position('b'), null)
    assert.deepEqual(t.got, ['a:1', 'b:1'])
    const c = t.client.subscribe('c', () => {}) // a second handler of c
    t.sock().receive(pub('c', 1, 'e'))
    assert.deepEqual(t.client.position('c'), { seq: 1, epoch: 'e' })
    c.unsubscribe()
    assert.deepEqual(t.client.position('c'), { seq: 1, epoch: 'e' }, 'kept while the topic has handlers')
    for (const s of t.subs.c) s.unsubscribe()
    assert.equal(t.client.position('c'), null)
    t.client.subscribe('c', () => {})
    assert.equal(t.client.position('c'), null)
    t.client.close()
  })
})
