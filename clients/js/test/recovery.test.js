// Recovery of topic history against the real server (cmd/switchboard --history): a client
// that was away gets exactly what it missed, in order, and says whether it could.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect, createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'

import { Switchboard } from '../index.js'
import { Inbox, sleep, startServer, untilState, waitFor } from './helpers.js'

const IN_CI = /^(1|true|yes)$/i.test(process.env.CI || '')

const clients = new Set()
function newClient(url, options = {}) {
  const client = new Switchboard(url, { WebSocket, minDelay: 50, maxDelay: 400, ...options })
  clients.add(client)
  client.on('error', () => {})
  return client
}
after(() => {
  for (const c of clients) c.close()
})

// watch subscribes to topic and records the publications' n, with seq and epoch, and the
// client's recovery events.
function watch(client, topic) {
  const got = new Inbox()
  const recoveries = new Inbox()
  const sub = client.subscribe(topic, (payload, msg) => got.push(payload.n, msg))
  client.on('recovery', (info) => info.topic === topic && recoveries.push(info))
  return { sub, got, recoveries, ns: () => got.items.map(([n]) => n) }
}

// publish sends n publications to topic through the HTTP API, one after the other.
async function publish(server, topic, from, to) {
  for (let n = from; n <= to; n++) await server.api('/api/publish', { topic, payload: { n } })
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe('history recovery (one server)', () => {
  let server
  before(async () => {
    server = await startServer({ args: ['--history', 'hist:*', '--history-size', '5'] })
  })
  after(async () => server?.stop())

  it('recovers exactly the publications missed while closed, then goes on live', async () => {
    const client = newClient(server.wsURL)
    const w = watch(client, 'hist:a')
    await w.sub.ready
    await publish(server, 'hist:a', 1, 2)
    await w.got.next((n) => n === 2)
    const before = client.position('hist:a')
    assert.equal(before.seq, 2)
    assert.equal(w.got.items[1][1].seq, 2)

    client.close()
    await publish(server, 'hist:a', 3, 5)
    client.connect()
    const [info] = await w.recoveries.next()
    assert.deepEqual(info.since, before)
    assert.equal(info.recovered, true)
    assert.deepEqual(info.position, { seq: 5, epoch: before.epoch })
    await w.got.next((n) => n === 5)
    await publish(server, 'hist:a', 6, 6)
    await w.got.next((n) => n === 6)
    assert.deepEqual(w.ns(), range(1, 6))
    assert.deepEqual(w.got.items.map(([, m]) => m.seq), range(1, 6))
    client.close()
  })

  it('recovers across dropped sockets while publications go on, with no gap and no duplicate', async () => {
    let last = null
    class Tracked extends WebSocket {
      constructor(...args) {
        super(...args)
        last = this
      }
    }
    const client = newClient(server.wsURL, { WebSocket: Tracked })
    const w = watch(client, 'hist:b')
    await w.sub.ready
    let n = 0
    for (let round = 0; round < 3; round++) {
      await publish(server, 'hist:b', n + 1, n + 2)
      n += 2
      await w.got.next((x) => x === n)
      last.terminate() // the connection drops (1006); the client reconnects with backoff
      await publish(server, 'hist:b', n + 1, n + 2) // while it is away, or just back
      n += 2
      await untilState(client, 'connected', 5000)
      await w.got.next((x) => x === n)
    }
    assert.deepEqual(w.ns(), range(1, n))
    assert.ok(w.recoveries.items.length >= 3, `${w.recoveries.items.length} recoveries`)
    assert.ok(w.recoveries.items.every(([r]) => r.recovered), 'a recovery failed')
    client.close()
  })

  it('reports recovered: false when more were missed than the history keeps', async () => {
    const client = newClient(server.wsURL)
    const w = watch(client, 'hist:c')
    await w.sub.ready
    await publish(server, 'hist:c', 1, 1)
    await w.got.next((n) => n === 1)
    client.close()
    await publish(server, 'hist:c', 2, 9) // 8 missed, 5 kept
    client.connect()
    const [info] = await w.recoveries.next()
    assert.equal(info.recovered, false)
    assert.deepEqual(info.position, { seq: 9, epoch: info.since.epoch })
    await publish(server, 'hist:c', 10, 10)
    await w.got.next((n) => n === 10)
    assert.deepEqual(w.ns(), [1, 10], 'nothing of the gap is replayed')
    assert.deepEqual(client.position('hist:c'), { seq: 10, epoch: info.since.epoch })
    client.close()
  })

  it('topics without history are resubscribed without recovery', async () => {
    const client = newClient(server.wsURL)
    const w = watch(client, 'plain')
    await w.sub.ready
    await publish(server, 'plain', 1, 1)
    await w.got.next((n) => n === 1)
    assert.equal(client.position('plain'), null)
    assert.equal(w.got.items[0][1].seq, undefined)
    client.close()
    await publish(server, 'plain', 2, 2) // lost: no history
    client.connect()
    await w.sub.ready
    await untilState(client, 'connected')
    await client.request('PING') // the SUBSCRIBE has been answered
    await publish(server, 'plain', 3, 3)
    await w.got.next((n) => n === 3)
    assert.deepEqual(w.ns(), [1, 3])
    assert.equal(w.recoveries.items.length, 0)
    client.close()
  })

  it('reports recovered: false after the server restarted (in-memory history lost)', async () => {
    const client = newClient(server.wsURL)
    const w = watch(client, 'hist:d')
    await w.sub.ready
    await publish(server, 'hist:d', 1, 1)
    await w.got.next((n) => n === 1)
    const old = client.position('hist:d')
    await server.stop()
    server = await startServer({ port: server.port, args: ['--history', 'hist:*', '--history-size', '5'] })
    const [info] = await w.recoveries.next(() => true, 10000)
    assert.equal(info.recovered, false)
    assert.notEqual(info.position.epoch, old.epoch)
    await publish(server, 'hist:d', 2, 2)
    await w.got.next((n) => n === 2)
    assert.deepEqual(client.position('hist:d'), { seq: 1, epoch: info.position.epoch })
    client.close()
  })
})

// redisReachable answers whether a Redis server answers PING at url.
function redisReachable(url) {
  const u = new URL(url)
  return new Promise((resolve) => {
    const sock = connect(Number(u.port || 6379), u.hostname)
    const done = (ok) => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(2000, () => done(false))
    sock.on('error', () => done(false))
    sock.on('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => done(String(d).startsWith('+PONG')))
  })
}

describe('history recovery across nodes (Redis)', () => {
  const redisURL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/0'
  const prefix = `sbtest:js:${randomBytes(4).toString('hex')}`
  const args = ['--broker', redisURL, '--broker-prefix', prefix, '--history', 'news']
  let nodes = []
  let unavailable = null
  before(async () => {
    if (!(await redisReachable(redisURL))) {
      unavailable = `Redis unreachable at ${redisURL} (set REDIS_URL, or start redis-server)`
      return
    }
    nodes = await Promise.all([startServer({ args }), startServer({ args }), startServer({ args })])
  })
  after(async () => Promise.all(nodes.map((n) => n.stop())))

  it('a client that leaves node A gets on node C what node B published meanwhile', async (t) => {
    if (unavailable) {
      if (IN_CI) assert.fail(`${unavailable}; CI=true, so this may not be skipped`)
      t.skip(unavailable)
      return
    }
    const [a, b, c] = nodes
    // The client always dials the node `target` names: a load balancer that sends the
    // reconnect elsewhere.
    let target = a
    class Balanced extends WebSocket {
      constructor(url, protocols) {
        super(target.wsURL, protocols)
      }
    }
    const client = newClient('ws://balancer/ws', { WebSocket: Balanced })
    const w = watch(client, 'news')
    await w.sub.ready
    await publish(b, 'news', 1, 2)
    await w.got.next((n) => n === 2)
    const before = client.position('news')

    client.close()
    await publish(b, 'news', 3, 12)
    target = c
    client.connect()
    const [info] = await w.recoveries.next()
    assert.equal(info.recovered, true)
    assert.deepEqual(info.since, before)
    await publish(a, 'news', 13, 13)
    await w.got.next((n) => n === 13)
    assert.deepEqual(w.ns(), range(1, 13))
    assert.deepEqual(w.got.items.map(([, m]) => m.seq), range(1, 13)) // a fresh stream: seq = n
    await waitFor(async () => (await c.health()).connections === 1, 2000, 'the client on C')
    client.close()
  })
})

// cutProxy forwards TCP connections to target (host, port). cut() closes every connection it
// carries and refuses new ones until restore(): the server behind it loses Redis while the
// others keep it.
async function cutProxy(target) {
  const conns = new Set()
  let down = false
  const server = createServer((client) => {
    if (down) return client.destroy()
    const upstream = connect(target.port, target.host)
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      conns.add(a)
      a.on('error', () => b.destroy())
      a.on('close', () => {
        conns.delete(a)
        b.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: server.address().port,
    cut() {
      down = true
      for (const c of conns) c.destroy()
    },
    restore() {
      down = false
    },
    close: () => new Promise((r) => server.close(r)),
  }
}

// count counts the occurrences of text in s.
const count = (s, text) => s.split(text).length - 1

describe('gaps between nodes (Redis)', () => {
  const redisURL = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0')
  const prefix = `sbtest:js:gap:${randomBytes(4).toString('hex')}`
  const common = ['--broker-prefix', prefix, '--history', 'news:*', '--history-size', '3']
  let a
  let b
  let proxy
  let unavailable = null
  before(async () => {
    if (!(await redisReachable(redisURL.href))) {
      unavailable = `Redis unreachable at ${redisURL.href} (set REDIS_URL, or start redis-server)`
      return
    }
    proxy = await cutProxy({ host: redisURL.hostname, port: Number(redisURL.port || 6379) })
    const viaProxy = new URL(redisURL.href)
    viaProxy.hostname = '127.0.0.1'
    viaProxy.port = String(proxy.port)
    a = await startServer({ args: ['--broker', redisURL.href, ...common] })
    b = await startServer({ args: ['--broker', viaProxy.href, ...common, '--log-level', 'info'] })
  })
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await proxy?.close()
  })

  // missOnB cuts node B off Redis while publish runs on node A, then waits until B's
  // Pub/Sub connections are back (and subscribed again).
  async function missOnB(publishMissed) {
    const lost = 'pub/sub connection lost'
    const restored = 'pub/sub connection restored'
    const lostBefore = count(b.stderr, lost)
    const restoredBefore = count(b.stderr, restored)
    proxy.cut()
    await waitFor(() => count(b.stderr, lost) > lostBefore, 5000, 'node B to lose Redis')
    await sleep(200) // every Pub/Sub connection of B notices at once: the proxy closed them all
    await publishMissed()
    proxy.restore()
    await waitFor(
      () => count(b.stderr, restored) - restoredBefore >= count(b.stderr, lost) - lostBefore,
      20000,
      'node B to be back on Redis',
    )
  }

  it('a node that missed publications delivers them from the history: no jump, no resubscription', async (t) => {
    if (unavailable) {
      if (IN_CI) assert.fail(`${unavailable}; CI=true, so this may not be skipped`)
      t.skip(unavailable)
      return
    }
    const client = newClient(b.wsURL)
    const w = watch(client, 'news:fill')
    await w.sub.ready
    await publish(a, 'news:fill', 1, 1)
    await w.got.next((n) => n === 1)
    await missOnB(() => publish(a, 'news:fill', 2, 3))
    await publish(a, 'news:fill', 4, 4)
    await w.got.next((n) => n === 4, 10000)
    assert.deepEqual(w.ns(), [1, 2, 3, 4])
    assert.deepEqual(w.got.items.map(([, m]) => m.seq), [1, 2, 3, 4])
    assert.deepEqual(w.recoveries.items, [], 'the client had nothing to recover')
    client.close()
  })

  it('when the history lost them too, the client resubscribes and reports recovered: false', async (t) => {
    if (unavailable) {
      if (IN_CI) assert.fail(`${unavailable}; CI=true, so this may not be skipped`)
      t.skip(unavailable)
      return
    }
    const client = newClient(b.wsURL)
    const w = watch(client, 'news:lost')
    await w.sub.ready
    await publish(a, 'news:lost', 1, 1)
    await w.got.next((n) => n === 1)
    const since = client.position('news:lost')
    await missOnB(() => publish(a, 'news:lost', 2, 6)) // the history keeps 4, 5, 6
    await publish(a, 'news:lost', 7, 7) // B fills 5, 6 and delivers 7: the client sees 1 → 5
    const [info] = await w.recoveries.next(() => true, 10000)
    assert.equal(info.recovered, false)
    assert.deepEqual(info.since, since)
    assert.deepEqual(info.position, { seq: 7, epoch: since.epoch })
    await publish(a, 'news:lost', 8, 8)
    await w.got.next((n) => n === 8)
    assert.deepEqual(w.ns(), [1, 8], 'nothing after the jump reached the handler before the answer')
    assert.deepEqual(client.position('news:lost'), { seq: 8, epoch: since.epoch })
    client.close()
  })
})
