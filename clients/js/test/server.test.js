// Integration tests against the real Go server (cmd/switchboard), built from this
// repository and run on 127.0.0.1.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'

import { Switchboard, SwitchboardError } from '../index.js'
import { Inbox, makeToken, nextEvent, sleep, startServer, untilState, waitFor } from './helpers.js'

// Every client of these tests, closed at the end whatever happens.
const clients = new Set()
function newClient(server, options = {}) {
  const client = new Switchboard(server.wsURL, { WebSocket, minDelay: 50, maxDelay: 400, ...options })
  clients.add(client)
  // Keep unexpected errors visible in the test output without failing on them.
  if (!options.quiet) client.on('error', () => {})
  return client
}
after(() => {
  for (const c of clients) c.close()
})

// subscribed resolves once the server has processed everything the client sent so far
// (the server handles one connection's messages in order): a PING round trip.
const settled = (client) => client.request('PING')

describe('against the server', () => {
  let server
  before(async () => {
    server = await startServer()
  })
  after(async () => {
    for (const c of clients) c.close()
    await server?.stop()
  })

  it('connects and reports its state', async () => {
    const client = newClient(server, { autoConnect: false })
    const states = []
    client.on('state', (s, prev) => states.push(`${prev}>${s}`))
    client.connect()
    await untilState(client, 'connected')
    assert.deepEqual(states, ['disconnected>connecting', 'connecting>connected'])
    assert.match(client.clientId, /^[0-9a-f-]{36}$/)
    assert.equal(client.userId, null)
    client.close()
    assert.equal(client.state, 'disconnected')
  })

  it('authenticates with an async getToken (dev token endpoint)', async () => {
    let calls = 0
    const client = newClient(server, {
      getToken: async () => {
        calls++
        return server.devToken(42)
      },
    })
    const [auth] = await nextEvent(client, 'authenticated')
    assert.equal(client.state, 'authenticated')
    assert.equal(client.userId, '42')
    assert.equal(auth.userId, '42')
    assert.equal(auth.refreshed, false)
    assert.ok(client.expiresAt > Date.now() / 1000 + 3000)
    assert.equal(calls, 1)
    client.close()
  })

  it('authenticates with a sync getToken (token subcommand)', async () => {
    const token = makeToken('alice', '10m')
    const client = newClient(server, { getToken: () => token })
    await untilState(client, 'authenticated')
    assert.equal(client.userId, 'alice')
    client.close()
  })

  it('subscribes before the connection is up and receives publications', async () => {
    const client = newClient(server, { getToken: () => server.devToken(42), autoConnect: false })
    const news = new Inbox()
    const orders = new Inbox()
    const data = new Inbox()
    const sub = client.subscribe('news', news.push)
    client.subscribe('user:42:orders', orders.push)
    client.on('data', data.push)
    client.connect()
    await sub.ready
    await settled(client)

    await server.api('/api/publish', { topic: 'news', payload: { resource: 'news', data: { n: 1 } } })
    const [payload, msg] = await news.next()
    assert.deepEqual(payload, { resource: 'news', data: { n: 1 } })
    assert.equal(msg.type, 'DATA')
    assert.equal(msg.topic, 'news')
    assert.equal(typeof msg.id, 'string')
    assert.equal(typeof msg.timestamp, 'number')
    await data.next((p) => p.data?.n === 1)

    await server.api('/api/publish', { topic: 'user:42:orders', type: 'EVENT', payload: { event: 'shipped', data: { id: 1042 } } })
    const [op, om] = await orders.next()
    assert.equal(om.type, 'EVENT')
    assert.equal(op.event, 'shipped')
    assert.equal(news.items.length, 1)
    client.close()
  })

  it('reports a refused subscription (another user’s topic)', async () => {
    const client = newClient(server, { getToken: () => server.devToken(42), quiet: true })
    const errors = []
    client.on('error', (e) => errors.push(e))
    const ok = client.subscribe('news', () => {})
    const bad = client.subscribe('user:7:updates', () => {})
    await assert.rejects(bad.ready, (err) => err instanceof SwitchboardError && err.code === 'forbidden')
    await ok.ready // the rest of the batch is subscribed anyway
    assert.deepEqual(client.topics, ['news'])
    assert.deepEqual(
      errors.map((e) => [e.code, e.topic]),
      [['forbidden', 'user:7:updates']],
    )
    client.close()
  })

  it('unsubscribes', async () => {
    const client = newClient(server)
    const a = new Inbox()
    const b = new Inbox()
    const subA = client.subscribe('topic-a', a.push)
    client.subscribe('topic-b', b.push)
    await subA.ready
    await settled(client)
    subA.unsubscribe()
    await settled(client)
    await server.api('/api/publish', { topic: 'topic-a', payload: { n: 1 } })
    await server.api('/api/publish', { topic: 'topic-b', payload: { n: 2 } })
    await b.next()
    await settled(client)
    assert.equal(a.items.length, 0)
    client.close()
  })

  it('receives notifications and broadcasts', async () => {
    const client = newClient(server, { getToken: () => makeToken(7) })
    const notes = new Inbox()
    const events = new Inbox()
    client.on('notification', notes.push)
    client.on('event', events.push)
    await untilState(client, 'authenticated')
    await server.api('/api/users/7/notify', { title: 'Order shipped', message: '#1042', level: 'success' })
    const [n] = await notes.next()
    assert.equal(n.title, 'Order shipped')
    assert.equal(n.message, '#1042')
    assert.equal(n.level, 'success')
    await server.api('/api/broadcast', { type: 'EVENT', payload: { event: 'maintenance' } })
    const [e, msg] = await events.next()
    assert.equal(e.event, 'maintenance')
    assert.equal(msg.topic, undefined)
    client.close()
  })

  it('makes requests: PING → PONG, ACTION → ACTION_RESULT or ERROR, unknown types, timeouts', async () => {
    const client = newClient(server)
    const pong = await client.request('PING', {}, { timeout: 2000 })
    assert.equal(pong.type, 'PONG')
    assert.ok(pong.correlation_id)

    // The dev-mode server's demo ACTION handler: echo, or ERROR bad_message.
    const echo = await client.action({ action: 'echo', order_id: 1042 })
    assert.deepEqual(echo, { ok: true, action: 'echo', user_id: null, echo: { action: 'echo', order_id: 1042 } })
    await assert.rejects(client.action({ action: 'cancel', order_id: 1042 }), (err) => {
      assert.ok(err instanceof SwitchboardError)
      assert.equal(err.code, 'bad_message')
      assert.match(err.message, /^ACTION: unknown action "cancel"/)
      return true
    })
    await assert.rejects(client.request('ORDER_STATUS', { id: 1 }), (err) => {
      assert.equal(err.code, 'unknown_type')
      assert.match(err.message, /no handler/)
      return true
    })
    // The server answers PONG with nothing at all.
    await assert.rejects(client.request('PONG', {}, { timeout: 200 }), { code: 'timeout' })
    // The connection is still fine.
    assert.equal((await client.request('PING')).type, 'PONG')
    assert.equal(client.state, 'connected')
    client.close()
  })

  it('keeps delivering when a handler throws', async () => {
    const client = newClient(server, { quiet: true })
    const errors = []
    client.on('error', (e) => errors.push(e))
    const got = new Inbox()
    let first = true
    const sub = client.subscribe('fragile', (p) => {
      if (first) {
        first = false
        throw new Error('handler bug')
      }
      got.push(p)
    })
    client.subscribe('fragile', got.push)
    await sub.ready
    await settled(client)
    await server.api('/api/publish', { topic: 'fragile', payload: { n: 1 } })
    await server.api('/api/publish', { topic: 'fragile', payload: { n: 2 } })
    await got.next((p) => p.n === 2)
    await waitFor(() => got.items.length === 3, 2000, 'three deliveries')
    assert.deepEqual(
      got.items.map(([p]) => p.n).sort(),
      [1, 2, 2],
    )
    assert.deepEqual(
      errors.map((e) => [e.code, e.cause?.message]),
      [['handler_error', 'handler bug']],
    )
    assert.equal(client.state, 'connected')
    client.close()
  })

  // CountingWebSocket is the ws package's WebSocket, counting the frames it receives.
  class CountingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args)
      CountingWebSocket.last = this
      this.frames = 0
      this.batches = 0
      this.addEventListener('message', (ev) => {
        this.frames++
        if (String(ev.data).includes('\n')) this.batches++
      })
    }
  }

  for (const batching of [true, false]) {
    const protocol = batching ? 'switchboard.v1.batch' : 'switchboard.v1'
    it(`negotiates ${protocol} (batching: ${batching}) and receives 200 quick publications in order`, async (t) => {
      const client = newClient(server, { WebSocket: CountingWebSocket, batching })
      const got = new Inbox()
      const sub = client.subscribe(`burst-${batching}`, got.push)
      await sub.ready
      await settled(client)
      assert.equal(client.protocol, protocol)
      const ws = CountingWebSocket.last
      const framesBefore = ws.frames

      const n = 200
      await server.publishPipelined(
        `burst-${batching}`,
        Array.from({ length: n }, (_, i) => ({ i, text: `message ${i}` })),
      )
      await waitFor(() => got.items.length >= n, 5000, `${n} publications`)
      await settled(client)
      assert.deepEqual(
        got.items.map(([p]) => p.i),
        Array.from({ length: n }, (_, i) => i),
      )
      const frames = ws.frames - framesBefore - 1 // less the PONG of settled()
      t.diagnostic(`${n} publications in ${frames} frames, ${ws.batches} of them batches`)
      if (!batching) {
        assert.equal(ws.batches, 0, 'a switchboard.v1 client got a batch')
        assert.equal(frames, n)
      } else {
        assert.ok(frames <= n, `${frames} frames for ${n} messages`)
      }
      client.close()
      assert.equal(client.protocol, null)
    })
  }

  it('does not reconnect after close()', async () => {
    const client = newClient(server)
    await untilState(client, 'connected')
    await waitFor(async () => (await server.health()).connections >= 1, 2000, 'the connection')
    const closes = []
    client.on('close', (c) => closes.push(c))
    client.close()
    assert.equal(client.state, 'disconnected')
    await sleep(1000) // more than maxDelay
    assert.equal(client.state, 'disconnected')
    assert.deepEqual(closes, [{ code: 1000, reason: 'client closed', reconnect: false }])
    await waitFor(async () => (await server.health()).connections === 0, 3000, 'no connection on the server')
    await assert.rejects(client.request('PING'), { code: 'closed' })
  })
})

describe('keepalive', () => {
  let server
  before(async () => {
    server = await startServer({ args: ['--ping-interval', '250ms', '--pong-timeout', '1s'] })
  })
  after(async () => server?.stop())

  it('answers server PINGs and stays connected', async () => {
    const client = newClient(server)
    const pings = new Inbox()
    const closes = []
    client.on('PING', pings.push)
    client.on('close', (c) => closes.push(c))
    await untilState(client, 'connected')
    const id = client.clientId
    await sleep(1500)
    assert.ok(pings.items.length >= 3, `${pings.items.length} pings`)
    assert.deepEqual(closes, [])
    assert.equal(client.clientId, id)
    client.close()
  })
})

describe('token refresh', () => {
  let server
  before(async () => {
    server = await startServer({ args: ['--token-expiry-warning', '1s'] })
  })
  after(async () => server?.stop())

  it('re-authenticates in place on token_expiring and keeps its subscriptions', async () => {
    const reasons = []
    const short = makeToken(42, '3s')
    const client = newClient(server, {
      getToken: ({ reason }) => {
        reasons.push(reason)
        return reasons.length === 1 ? short : makeToken(42, '1h')
      },
    })
    const closes = []
    const errors = []
    client.on('close', (c) => closes.push(c))
    client.on('error', (e) => errors.push(e))
    const inbox = new Inbox()
    const sub = client.subscribe('user:42:feed', inbox.push)
    await sub.ready
    const first = client.expiresAt
    const id = client.clientId
    const started = Date.now()

    const [auth] = await nextEvent(client, 'authenticated', (a) => a.refreshed, 4000)
    assert.deepEqual(reasons, ['connect', 'refresh'])
    assert.ok(auth.expiresAt > first + 1000)
    // Past the first token's expiry: the connection would have been closed with 4001.
    await sleep(Math.max(0, 4000 - (Date.now() - started)))
    await server.api('/api/publish', { topic: 'user:42:feed', payload: { after: 'refresh' } })
    const [p] = await inbox.next()
    assert.deepEqual(p, { after: 'refresh' })
    assert.deepEqual(closes, [])
    assert.deepEqual(errors, [])
    assert.equal(client.clientId, id)
    assert.equal(client.state, 'authenticated')
    client.close()
  })

  it('does not reconnect after 4001 (token expired) when getToken has nothing new', async () => {
    const short = makeToken(42, '2s')
    const client = newClient(server, { getToken: () => short, quiet: true })
    const errors = []
    client.on('error', (e) => errors.push(e))
    await untilState(client, 'authenticated')
    const [close] = await nextEvent(client, 'close', () => true, 5000)
    assert.equal(close.code, 4001)
    assert.equal(close.reconnect, false)
    assert.equal(client.state, 'disconnected')
    const codes = errors.map((e) => e.code)
    assert.ok(codes.includes('token_expiring'), codes.join()) // could not refresh
    assert.ok(codes.includes('unauthorized'), codes.join())
    await sleep(600)
    assert.equal(client.state, 'disconnected')
  })
})

describe('reconnect', () => {
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    it(`restores subscriptions after the server restarts (${signal})`, async () => {
      let server = await startServer()
      try {
        const client = newClient(server, { getToken: () => makeToken(42) })
        const inbox = new Inbox()
        const sub = client.subscribe('news', inbox.push)
        client.subscribe('user:42:updates', inbox.push)
        await sub.ready
        await settled(client)
        await server.api('/api/publish', { topic: 'news', payload: { n: 'before' } })
        await inbox.next((p) => p.n === 'before')
        const firstId = client.clientId

        const closed = nextEvent(client, 'close', () => true, 8000)
        await server.stop(signal)
        const [close] = await closed
        assert.equal(close.code, signal === 'SIGTERM' ? 1001 : 1006)
        assert.equal(close.reconnect, true)
        if (signal === 'SIGTERM') assert.ok(close.delay < 50, `delay ${close.delay}`)

        await sleep(300) // a few failed attempts while the server is down
        server = await startServer({ port: server.port })
        await untilState(client, 'authenticated', 5000)
        await settled(client) // the SUBSCRIBE sent on reconnect has been processed
        assert.notEqual(client.clientId, firstId)
        assert.deepEqual(client.topics, ['news', 'user:42:updates'])

        await server.api('/api/publish', { topic: 'news', payload: { n: 'after' } })
        await server.api('/api/publish', { topic: 'user:42:updates', payload: { n: 'after-user' } })
        await inbox.next((p) => p.n === 'after')
        await inbox.next((p) => p.n === 'after-user')
        client.close()
      } finally {
        await server.stop()
      }
    })
  }
})
