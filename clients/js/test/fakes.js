// Fakes for the unit tests: a clock whose time moves only when told, a scripted random
// source, and a WebSocket whose server side the test plays.

// flush lets pending promise callbacks run.
export const flush = () => new Promise((r) => setImmediate(r))

export class FakeClock {
  constructor() {
    this.now = 0
    this.timers = new Map()
    this.seq = 0
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq
      this.timers.set(id, { fn, ms, at: this.now + ms })
      return id
    }
    this.clearTimeout = (id) => {
      this.timers.delete(id)
    }
  }

  // pending lists the delays of the timers not yet run, in order of creation.
  pending() {
    return [...this.timers.values()].map((t) => t.ms)
  }

  // advance moves time forward by ms, running the timers due on the way (and the promise
  // callbacks they start).
  async advance(ms) {
    const end = this.now + ms
    for (;;) {
      let next = null
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next[1].at)) next = [id, t]
      }
      if (next === null) break
      this.timers.delete(next[0])
      this.now = next[1].at
      next[1].fn()
      await flush()
    }
    this.now = end
    await flush()
  }
}

// sequence returns a random source that yields values in turn, repeating the last one.
export function sequence(...values) {
  let i = 0
  return () => values[Math.min(i++, values.length - 1)]
}

// seeded returns a deterministic uniform random source in [0, 1) (mulberry32).
export function seeded(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// fakeWebSocket returns a WebSocket class whose instances are recorded in .sockets.
export function fakeWebSocket() {
  const sockets = []
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url
      this.protocols = protocols
      this.protocol = ''
      this.readyState = 0
      this.sent = []
      this.closedWith = null
      this.terminated = false
      this.onopen = this.onmessage = this.onclose = this.onerror = null
      sockets.push(this)
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('not open')
      this.sent.push(JSON.parse(data))
    }

    close(code, reason) {
      this.readyState = 3
      this.closedWith = { code, reason }
    }

    terminate() {
      this.readyState = 3
      this.terminated = true
    }

    // The server side, played by the test. The server chooses protocol, by default the
    // first subprotocol the client asked for.
    open(protocol) {
      const offered = typeof this.protocols === 'string' ? [this.protocols] : this.protocols || []
      this.protocol = protocol ?? offered[0] ?? ''
      this.readyState = 1
      this.onopen?.({})
    }

    receive(msg) {
      this.onmessage?.({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) })
    }

    serverClose(code, reason = '') {
      this.readyState = 3
      this.onclose?.({ code, reason })
    }

    fail() {
      this.readyState = 3
      this.onerror?.({})
      this.onclose?.({ code: 1006, reason: '' })
    }

    // sentOf lists the messages of a type the client sent.
    sentOf(type) {
      return this.sent.filter((m) => m.type === type)
    }

    last(type) {
      const all = this.sentOf(type)
      return all[all.length - 1]
    }

    // reply answers the client's last message of type with a message of replyType.
    reply(type, replyType, payload = {}) {
      const req = this.last(type)
      if (!req) throw new Error(`the client sent no ${type}; sent: ${this.sent.map((m) => m.type).join(', ')}`)
      this.receive({ type: replyType, payload, id: `srv-${Math.random()}`, timestamp: 1, correlation_id: req.id })
      return req
    }
  }
  FakeSocket.sockets = sockets
  FakeSocket.CONNECTING = 0
  FakeSocket.OPEN = 1
  FakeSocket.CLOSED = 3
  return FakeSocket
}

// handshake plays the server's side of a connection: open, CONNECT_ACK and, when the
// client authenticates, AUTHENTICATE_SUCCESS.
export async function handshake(sock, { requiresAuth = false, pingInterval = 25, userId = '42', auth } = {}) {
  sock.open()
  await flush()
  sock.reply('CONNECT', 'CONNECT_ACK', {
    client_id: `c${Math.random()}`,
    requires_auth: requiresAuth,
    authenticated: false,
    ping_interval: pingInterval,
  })
  await flush()
  if (auth ?? sock.sentOf('AUTHENTICATE').length > 0) {
    await flush()
    sock.reply('AUTHENTICATE', 'AUTHENTICATE_SUCCESS', { user_id: userId, expires_at: 2000000000 })
    await flush()
  }
}
