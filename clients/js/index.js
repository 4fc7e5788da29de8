// Switchboard JavaScript client: wire protocol v1 (docs/protocol.md) over a WebSocket.
//
// One ES module with no dependencies and no Node-only imports, so that the same file runs
// in browsers (the global WebSocket) and in Node (pass a WebSocket class, e.g. from the
// `ws` package, as the `WebSocket` option).

/** The states of a client, in the order a connection goes through them. */
export const States = Object.freeze({
  DISCONNECTED: 'disconnected',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  AUTHENTICATED: 'authenticated',
})

/** The WebSocket close codes of protocol v1 that the client acts on. */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  AUTH_FAILED: 4001,
  FORBIDDEN: 4003,
})

/** Default options (delays in milliseconds). */
export const defaults = Object.freeze({
  minDelay: 500,
  maxDelay: 20000,
  requestTimeout: 10000,
  connectTimeout: 10000,
  maxQueue: 256,
  autoConnect: true,
  batching: true,
  recover: true,
})

/** The WebSocket subprotocols of wire protocol v1 (docs/protocol.md, "Subprotocols"). */
export const Subprotocols = Object.freeze({
  /** One JSON envelope per text frame. */
  V1: 'switchboard.v1',
  /** Several envelopes per text frame, separated by "\n", when several are queued. */
  V1_BATCH: 'switchboard.v1.batch',
})

// Close code of a WebSocket that the client gives up on itself (handshake or ping timeout,
// a failed token fetch). Browsers accept only 1000 and 3000–4999 from close().
const CLIENT_ABANDON_CODE = 4000

// Event names that are the client's own; every other name is a message type.
const CLIENT_EVENTS = new Set(['state', 'error', 'message', 'close', 'authenticated', 'recovery'])
// Lower-case aliases of the common message types.
const TYPE_ALIASES = { data: 'DATA', event: 'EVENT', notification: 'NOTIFICATION' }
// Authentication failure reasons after which another token may succeed.
const RETRYABLE_AUTH_REASONS = new Set(['expired', 'invalid', 'malformed', 'no_token'])
// The most AUTHENTICATE attempts the client makes on one connection before it gives up.
const MAX_AUTH_ATTEMPTS = 3

const noop = () => {}

/**
 * An error of the client or of the server. `code` is one of the protocol's ERROR codes
 * (`unknown_type`, `unauthorized`, `forbidden`, …), a SUBSCRIBE_FAILURE or
 * AUTHENTICATE_FAILURE reason, or one of the client's own: `timeout`, `disconnected`,
 * `closed`, `auth_failed`, `token_error`, `handler_error`, `bad_message`, `queue_full`,
 * `unsubscribed`.
 */
export class SwitchboardError extends Error {
  /**
   * @param {string} code machine-readable code
   * @param {string} message human-readable text
   * @param {{cause?: unknown, payload?: object, closeCode?: number, reason?: string, topic?: string}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined)
    this.name = 'SwitchboardError'
    /** @type {string} */
    this.code = code
    if (details.payload !== undefined) this.payload = details.payload
    if (details.closeCode !== undefined) this.closeCode = details.closeCode
    if (details.reason !== undefined) this.reason = details.reason
    if (details.topic !== undefined) this.topic = details.topic
  }
}

/**
 * backoffDelay returns the delay before reconnect attempt `attempt` (0 for the first
 * retry after a connection was lost): exponential backoff with full jitter, a random
 * time in [0, min(maxDelay, minDelay · 2^attempt)).
 *
 * @param {number} attempt
 * @param {{minDelay?: number, maxDelay?: number, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}) {
  const min = options.minDelay ?? defaults.minDelay
  const max = options.maxDelay ?? defaults.maxDelay
  const random = options.random ?? Math.random
  const ceiling = Math.min(max, min * 2 ** Math.min(Math.max(attempt, 0), 52))
  return Math.floor(random() * ceiling)
}

/**
 * A subscription to a topic, returned by {@link Switchboard#subscribe}.
 */
export class Subscription {
  /** @internal */
  constructor(client, topic, handler) {
    /** The topic. */
    this.topic = topic
    /** @internal */
    this._client = client
    /** @internal */
    this._handler = handler
    /** @internal */
    this._closed = false
    /** @internal */
    this._settled = false
    /**
     * Resolves once the server has confirmed the subscription (SUBSCRIBE_SUCCESS), rejects
     * with a SwitchboardError whose code is the SUBSCRIBE_FAILURE reason (`forbidden`,
     * `invalid_topic`, `too_many_subscriptions`, …) if the server refuses it. Awaiting it
     * is optional: a refusal is reported as an 'error' event as well.
     * @type {Promise<void>}
     */
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve
      this._reject = reject
    })
    this.ready.catch(noop) // nobody has to await it
  }

  /** Whether the subscription has ended (unsubscribed or refused). */
  get closed() {
    return this._closed
  }

  /** Ends the subscription. The handler is not called again. Safe to call twice. */
  unsubscribe() {
    if (this._closed) return
    this._client._removeSubscription(this)
    this._fail(new SwitchboardError('unsubscribed', `unsubscribed from ${this.topic}`))
  }

  /** @internal */
  _confirm() {
    if (this._settled) return
    this._settled = true
    this._resolve()
  }

  /** @internal */
  _fail(err) {
    this._closed = true
    if (this._settled) return
    this._settled = true
    this._reject(err)
  }
}

/**
 * Switchboard is a client of a Switchboard server: it connects, authenticates, keeps its
 * subscriptions across reconnects, refreshes its token, and answers the server's PINGs.
 *
 * ```js
 * const client = new Switchboard('wss://example.com/ws', {
 *   getToken: async () => (await fetch('/token')).text(),
 * })
 * client.subscribe('news', (payload, msg) => console.log(msg.type, payload))
 * client.on('notification', (n) => alert(n.title))
 * ```
 */
export class Switchboard {
  /**
   * Creates a client and, unless `autoConnect` is false, starts connecting.
   *
   * @param {string | URL} url the WebSocket endpoint, e.g. `wss://example.com/ws`; http(s) URLs
   *   and, in a browser, paths relative to the page are accepted too
   * @param {object} [options] see index.d.ts (`SwitchboardOptions`) and the README
   */
  constructor(url, options = {}) {
    this._url = toWebSocketURL(url)
    const clock = options.clock || {}
    const st = options.setTimeout || clock.setTimeout
    const ct = options.clearTimeout || clock.clearTimeout
    this._setTimeout = st ? (fn, ms) => st(fn, ms) : (fn, ms) => setTimeout(fn, ms)
    this._clearTimeout = ct ? (t) => ct(t) : (t) => clearTimeout(t)
    this._random = options.random || clock.random || Math.random
    this._WebSocket = options.WebSocket || globalThis.WebSocket
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError(
        'switchboard: no WebSocket implementation: pass one as the WebSocket option ' +
          "(in Node: import WebSocket from 'ws')",
      )
    }
    this._getToken = typeof options.getToken === 'function' ? options.getToken : null
    this._minDelay = nonNegative(options.minDelay, defaults.minDelay)
    this._maxDelay = Math.max(this._minDelay, nonNegative(options.maxDelay, defaults.maxDelay))
    this._requestTimeout = nonNegative(options.requestTimeout, defaults.requestTimeout)
    this._connectTimeout = nonNegative(options.connectTimeout, defaults.connectTimeout)
    this._maxQueue = nonNegative(options.maxQueue, defaults.maxQueue)
    this._recover = options.recover ?? defaults.recover
    this._protocols = (options.batching ?? defaults.batching)
      ? [Subprotocols.V1_BATCH, Subprotocols.V1]
      : [Subprotocols.V1]

    this._state = States.DISCONNECTED
    this._listeners = new Map() // event name → Set of handlers
    // topic → {subs: Set<Subscription>, status: 'pending'|'sent'|'active', position: {seq, epoch}|null}
    this._subs = new Map()
    this._pending = new Map() // message id → request entry
    this._outbox = [] // messages waiting for the connection to be ready
    this._seq = 0
    this._gen = 0 // generation of the current socket; events of older sockets are ignored
    this._ws = null
    this._ready = false
    this._stopped = false // true after close(), or once the client has given up
    this._attempt = 0
    this._reconnectTimer = null
    this._connectTimer = null
    this._watchdog = null
    this._pingInterval = 0
    this._clientId = null
    this._protocol = null
    this._userId = null
    this._expiresAt = null
    this._lastToken = null
    this._nextToken = null // a token fetched after a 4001/4003 close, for the next connection
    this._emittingError = 0

    if (options.autoConnect ?? defaults.autoConnect) this.connect()
  }

  // ---- public API -------------------------------------------------------------------

  /**
   * The client's state: `disconnected`, `connecting`, `connected` (CONNECT_ACK received,
   * not authenticated) or `authenticated`. Changes are reported by the `state` event.
   * @type {'disconnected' | 'connecting' | 'connected' | 'authenticated'}
   */
  get state() {
    return this._state
  }

  /** The connection's ID from CONNECT_ACK (`client_id`), or null when not connected. */
  get clientId() {
    return this._clientId
  }

  /**
   * The WebSocket subprotocol the server chose: `switchboard.v1.batch` (several messages
   * may arrive in one frame), `switchboard.v1`, or '' when it chose none; null while no
   * socket is open.
   * @type {string | null}
   */
  get protocol() {
    return this._protocol
  }

  /** The authenticated user's ID, or null. */
  get userId() {
    return this._userId
  }

  /** When the token expires, in seconds since the epoch (from AUTHENTICATE_SUCCESS), or null. */
  get expiresAt() {
    return this._expiresAt
  }

  /** The topics the client is subscribed to (or will subscribe to once connected). */
  get topics() {
    return [...this._subs.keys()]
  }

  /**
   * The position the client has reached in a topic's history: `{seq, epoch}` of the last
   * publication it received (or the position the server gave when it subscribed), or null
   * for a topic without history or not subscribed. After a reconnect the client asks the
   * server to recover what was published after it.
   *
   * @param {string} topic
   * @returns {{seq: number, epoch: string} | null}
   */
  position(topic) {
    const pos = this._subs.get(topic)?.position
    return pos ? { seq: pos.seq, epoch: pos.epoch } : null
  }

  /**
   * Starts connecting, if the client is not connected or connecting already. Needed only
   * with `autoConnect: false`, after close(), or after the client gave up (a 1000 close,
   * or a 4001/4003 close without a new token). During a reconnect delay it connects at once.
   */
  connect() {
    this._stopped = false
    if (this._ws) return
    if (this._reconnectTimer !== null) {
      this._clearTimeout(this._reconnectTimer)
      this._reconnectTimer = null
    }
    this._open()
  }

  /**
   * Closes the connection (DISCONNECT, then close code 1000) and stops reconnecting.
   * Pending requests and queued messages are rejected or dropped; subscriptions are kept
   * and restored by a later connect(). The state is `disconnected` when close() returns.
   *
   * @param {string} [reason]
   */
  close(reason = 'client closed') {
    this._stopped = true
    if (this._reconnectTimer !== null) {
      this._clearTimeout(this._reconnectTimer)
      this._reconnectTimer = null
    }
    const ws = this._ws
    if (ws) {
      if (ws.readyState === 1) {
        this._sendFrame({ type: 'DISCONNECT', payload: { code: 1000, reason } })
      }
      this._detach(ws, 1000, reason)
      this._onClose(this._gen, 1000, reason)
    } else {
      this._setState(States.DISCONNECTED)
    }
    this._failQueued(new SwitchboardError('closed', 'the client was closed'))
  }

  /**
   * Subscribes to a topic. The handler receives `(payload, message)` for every message
   * published to the topic. The SUBSCRIBE is sent as soon as the connection is ready
   * (after authentication when a token is used), and again after every reconnect.
   *
   * For a topic with history on the server, the client keeps its position (see position())
   * and, after a reconnect, asks the server to send what it missed: the handler then gets
   * the missed publications, in order, before the new ones, and the `recovery` event says
   * whether nothing was lost. `options.since`, a position the application kept (e.g. that of
   * the state it loaded), asks for that recovery on the first SUBSCRIBE too.
   *
   * @param {string} topic
   * @param {(payload: any, message: object) => void} handler
   * @param {{since?: {seq: number, epoch: string}}} [options]
   * @returns {Subscription}
   */
  subscribe(topic, handler, options = {}) {
    if (typeof topic !== 'string' || topic === '') {
      throw new TypeError('switchboard: subscribe: topic must be a non-empty string')
    }
    if (typeof handler !== 'function') {
      throw new TypeError('switchboard: subscribe: handler must be a function')
    }
    const sub = new Subscription(this, topic, handler)
    let rec = this._subs.get(topic)
    if (!rec) {
      rec = { subs: new Set(), status: 'pending', position: toPosition(options?.since), resyncing: false }
      this._subs.set(topic, rec)
    }
    rec.subs.add(sub)
    if (rec.status === 'active') sub._confirm()
    else if (rec.status === 'pending' && this._ready) this._sendSubscribe([topic])
    return sub
  }

  /**
   * Sends a message and waits for the reply whose `correlation_id` is its `id`. Resolves
   * with the whole reply (`{type, payload, id, timestamp, correlation_id, …}`); rejects
   * with a SwitchboardError when the reply is an ERROR (`code` is the ERROR's code), on
   * timeout (`timeout`), when the connection drops before the reply (`disconnected`) or
   * when the client is closed (`closed`). While the client is not connected the request
   * waits for the connection (the timeout runs meanwhile).
   *
   * @param {string} type
   * @param {any} [payload]
   * @param {{timeout?: number}} [options] timeout in ms (default `requestTimeout`, 0 = none)
   * @returns {Promise<object>}
   */
  request(type, payload = {}, options = {}) {
    if (typeof type !== 'string' || type === '') {
      return Promise.reject(new TypeError('switchboard: request: type must be a non-empty string'))
    }
    if (this._stopped && !this._ws) {
      return Promise.reject(new SwitchboardError('closed', 'the client is closed; call connect() first'))
    }
    const timeout = nonNegative(options.timeout, this._requestTimeout)
    const msg = { type, id: this._nextId(), payload: payload ?? {} }
    const promise = this._track(msg.id, type, timeout)
    if (this._ready) this._sendTracked(msg)
    else this._outbox.push({ msg, tracked: true })
    return promise
  }

  /**
   * Sends an ACTION and resolves with the payload of its ACTION_RESULT. Rejects like
   * request(): a server without an ACTION handler answers ERROR `unknown_type`.
   *
   * @param {object} payload
   * @param {{timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  async action(payload, options) {
    const reply = await this.request('ACTION', payload, options)
    return reply.payload
  }

  /**
   * Sends a message without waiting for an answer. While the client is not connected the
   * message is queued (at most `maxQueue` messages; the oldest is dropped beyond) and
   * sent once it is. Returns the message's id.
   *
   * @param {string} type
   * @param {any} [payload]
   * @returns {string}
   */
  send(type, payload = {}) {
    if (typeof type !== 'string' || type === '') {
      throw new TypeError('switchboard: send: type must be a non-empty string')
    }
    const msg = { type, id: this._nextId(), payload: payload ?? {} }
    if (this._ready) {
      this._sendFrame(msg)
    } else if (!(this._stopped && !this._ws)) {
      this._outbox.push({ msg, tracked: false })
      this._trimOutbox()
    } else {
      this._reportError(new SwitchboardError('closed', `${type} not sent: the client is closed`))
    }
    return msg.id
  }

  /**
   * Registers a handler.
   *
   * - `state`: `(state, previous)` on every state change;
   * - `error`: `(err)` with a SwitchboardError (server ERRORs that answer no request,
   *   refused subscriptions, authentication problems, handlers that threw);
   * - `close`: `({code, reason, reconnect, delay})` when a connection ends;
   * - `authenticated`: `({userId, expiresAt, refreshed})` after every successful AUTHENTICATE;
   * - `recovery`: `({topic, recovered, since, position})` when the server answers a SUBSCRIBE
   *   that asked to recover a topic from position `since` (after a reconnect, with the
   *   `since` option, or after a jump in the topic's seq): `recovered` is true when the server sends every publication missed
   *   since then, false when some are lost (the history expired, was trimmed, or the gap is
   *   over the server's limit) and the application should reload the topic's state;
   *   `position` is the topic's latest position on the server when it answered;
   * - `message`: `(message)` for every message received;
   * - `data`, `event`, `notification`: `(payload, message)` for DATA, EVENT, NOTIFICATION;
   * - any other name is a message type (`PING`, `ERROR`, `MY_TYPE`…): `(payload, message)`.
   *
   * @param {string} event
   * @param {Function} handler
   * @returns {() => void} a function that removes the handler
   */
  on(event, handler) {
    if (typeof handler !== 'function') throw new TypeError('switchboard: on: handler must be a function')
    const name = eventName(event)
    let set = this._listeners.get(name)
    if (!set) this._listeners.set(name, (set = new Set()))
    set.add(handler)
    return () => this.off(event, handler)
  }

  /**
   * Removes a handler registered with on() or once(); without a handler, every handler of
   * the event.
   *
   * @param {string} event
   * @param {Function} [handler]
   */
  off(event, handler) {
    const name = eventName(event)
    if (handler === undefined) {
      this._listeners.delete(name)
      return
    }
    const set = this._listeners.get(name)
    if (!set) return
    for (const h of set) {
      if (h === handler || h._original === handler) set.delete(h)
    }
    if (set.size === 0) this._listeners.delete(name)
  }

  /**
   * Registers a handler that is called at most once.
   *
   * @param {string} event
   * @param {Function} handler
   * @returns {() => void} a function that removes the handler
   */
  once(event, handler) {
    if (typeof handler !== 'function') throw new TypeError('switchboard: once: handler must be a function')
    const wrapper = (...args) => {
      this.off(event, wrapper)
      return handler.apply(this, args)
    }
    wrapper._original = handler
    return this.on(event, wrapper)
  }

  // ---- connection lifecycle ---------------------------------------------------------

  _open() {
    const gen = ++this._gen
    this._setState(States.CONNECTING)
    let ws
    try {
      ws = new this._WebSocket(this._url, this._protocols)
    } catch (err) {
      this._reportError(new SwitchboardError('connect_failed', `cannot open ${this._url}: ${errText(err)}`, { cause: err }))
      this._ws = null
      this._onClose(gen, CloseCodes.ABNORMAL, 'cannot open the WebSocket')
      return
    }
    this._ws = ws
    ws.onopen = () => {
      if (gen !== this._gen) return
      this._protocol = typeof ws.protocol === 'string' ? ws.protocol : ''
      this._handshake(gen)
    }
    ws.onmessage = (ev) => {
      if (gen === this._gen) this._onFrame(ev.data)
    }
    ws.onclose = (ev) => this._onClose(gen, ev.code, ev.reason)
    ws.onerror = noop // a close event follows
    if (this._connectTimeout > 0) {
      this._connectTimer = this._setTimeout(() => {
        this._connectTimer = null
        if (gen === this._gen && !this._ready) this._abandon(gen, 'connection not ready in time')
      }, this._connectTimeout)
    }
  }

  // _handshake runs on a fresh socket: CONNECT, AUTHENTICATE when needed, then ready.
  async _handshake(gen) {
    let ack
    try {
      ack = await this._call('CONNECT', {})
    } catch (err) {
      if (gen === this._gen && err.code !== 'disconnected') {
        this._reportError(err)
        this._abandon(gen, 'no CONNECT_ACK')
      }
      return
    }
    if (gen !== this._gen) return
    const info = isObject(ack.payload) ? ack.payload : {}
    this._clientId = typeof info.client_id === 'string' ? info.client_id : null
    this._pingInterval = typeof info.ping_interval === 'number' && info.ping_interval > 0 ? info.ping_interval : 0
    this._touch()
    this._setState(States.CONNECTED)
    if (info.authenticated) {
      this._userId = info.user_id != null ? String(info.user_id) : null
    }
    const requiresAuth = info.requires_auth === true
    if (this._getToken) {
      const ok = await this._login(gen, requiresAuth)
      if (!ok || gen !== this._gen) return
    } else if (requiresAuth && !info.authenticated) {
      this._giveUp(
        new SwitchboardError('unauthorized', 'the server requires authentication and no getToken option was given'),
      )
      return
    } else if (info.authenticated) {
      this._setState(States.AUTHENTICATED)
    }
    this._becomeReady()
  }

  // _login authenticates a fresh connection. It returns whether the connection may go on
  // (authenticated, or anonymous where the server allows it).
  async _login(gen, requiresAuth) {
    let prefetched = this._nextToken
    this._nextToken = null
    let rejected = null
    for (let attempt = 1; ; attempt++) {
      let token
      if (prefetched != null) {
        token = prefetched
        prefetched = null
      } else {
        try {
          token = await this._getToken({ reason: attempt === 1 ? 'connect' : 'retry' })
        } catch (err) {
          if (gen !== this._gen) return false
          this._reportError(new SwitchboardError('token_error', `getToken failed: ${errText(err)}`, { cause: err }))
          this._abandon(gen, 'getToken failed')
          return false
        }
        if (gen !== this._gen) return false
      }
      if (token == null || token === '') {
        if (!requiresAuth) return true // anonymous
        this._giveUp(new SwitchboardError('unauthorized', 'the server requires authentication and getToken gave no token'))
        return false
      }
      token = String(token)
      if (token === rejected) {
        this._giveUp(
          new SwitchboardError('auth_failed', 'authentication failed and getToken gave the same token again', {
            reason: this._lastFailure,
          }),
        )
        return false
      }
      const res = await this._authenticate(gen, token, false)
      if (gen !== this._gen) return false
      if (res.ok) return true
      const reason = res.reason
      this._lastFailure = reason
      if (reason === 'auth_disabled') {
        // The server has no authentication: say so, and go on anonymous.
        this._reportError(authError(reason))
        return true
      }
      if (reason === 'too_many_connections') {
        this._reportError(authError(reason))
        this._abandon(gen, 'too many connections')
        return false
      }
      if (!res.failure) return false // ERROR or disconnect: already handled
      if (!RETRYABLE_AUTH_REASONS.has(reason) || attempt >= MAX_AUTH_ATTEMPTS) {
        this._giveUp(authError(reason))
        return false
      }
      rejected = token
    }
  }

  // _authenticate sends AUTHENTICATE. It returns {ok} or {ok: false, reason, failure}
  // where failure says the server answered AUTHENTICATE_FAILURE.
  async _authenticate(gen, token, refreshed) {
    this._lastToken = token
    let reply
    try {
      reply = await this._call('AUTHENTICATE', { auth: { token } })
    } catch (err) {
      if (gen === this._gen && err.code !== 'disconnected') {
        this._reportError(err)
        if (!refreshed) this._abandon(gen, 'AUTHENTICATE not answered')
      }
      return { ok: false, reason: err.code, failure: false }
    }
    if (gen !== this._gen) return { ok: false, reason: 'disconnected', failure: false }
    const p = isObject(reply.payload) ? reply.payload : {}
    if (reply.type !== 'AUTHENTICATE_SUCCESS') {
      return { ok: false, reason: typeof p.reason === 'string' ? p.reason : 'unknown', failure: true }
    }
    this._userId = p.user_id != null ? String(p.user_id) : null
    this._expiresAt = typeof p.expires_at === 'number' ? p.expires_at : null
    this._setState(States.AUTHENTICATED)
    this._emit('authenticated', { userId: this._userId, expiresAt: this._expiresAt, refreshed })
    return { ok: true }
  }

  // _refresh answers ERROR token_expiring: a fresh AUTHENTICATE on the same connection.
  async _refresh(gen) {
    if (!this._getToken) {
      this._reportError(new SwitchboardError('token_expiring', 'the token expires soon and there is no getToken option to refresh it'))
      return
    }
    let token
    try {
      token = await this._getToken({ reason: 'refresh' })
    } catch (err) {
      if (gen === this._gen) {
        this._reportError(new SwitchboardError('token_error', `getToken failed: ${errText(err)}`, { cause: err }))
      }
      return
    }
    if (gen !== this._gen) return
    if (token == null || token === '' || String(token) === this._lastToken) {
      this._reportError(new SwitchboardError('token_expiring', 'the token expires soon and getToken gave no new one'))
      return
    }
    const res = await this._authenticate(gen, String(token), true)
    if (!res.ok && res.failure && gen === this._gen) this._reportError(authError(res.reason))
  }

  // _becomeReady runs once the connection is usable: subscriptions are restored, then the
  // queued messages are sent.
  _becomeReady() {
    if (this._connectTimer !== null) {
      this._clearTimeout(this._connectTimer)
      this._connectTimer = null
    }
    this._ready = true
    this._attempt = 0
    const topics = []
    for (const [topic, rec] of this._subs) if (rec.status === 'pending') topics.push(topic)
    if (topics.length > 0) this._sendSubscribe(topics)
    const queued = this._outbox
    this._outbox = []
    for (const { msg, tracked } of queued) {
      if (tracked) {
        if (this._pending.has(msg.id)) this._sendTracked(msg)
      } else {
        this._sendFrame(msg)
      }
    }
  }

  // _onClose handles the end of the socket of generation gen: it decides whether and when
  // to reconnect.
  _onClose(gen, code, reason) {
    if (gen !== this._gen) return
    this._gen++ // late events of this socket are ignored from now on
    this._ws = null
    this._ready = false
    this._clientId = null
    this._protocol = null
    this._userId = null
    this._expiresAt = null
    this._pingInterval = 0
    for (const t of [this._connectTimer, this._watchdog]) if (t !== null) this._clearTimeout(t)
    this._connectTimer = this._watchdog = null
    for (const rec of this._subs.values()) {
      rec.status = 'pending'
      rec.resyncing = false
    }
    const lost = new SwitchboardError('disconnected', `connection closed (${code}) before the reply`, { closeCode: code })
    for (const [id, entry] of this._pending) {
      if (entry.sent) {
        this._pending.delete(id)
        entry.finish()
        entry.reject(lost)
      }
    }
    code = typeof code === 'number' ? code : CloseCodes.ABNORMAL
    reason = typeof reason === 'string' ? reason : ''
    this._setState(States.DISCONNECTED)

    if (this._stopped) {
      this._emit('close', { code, reason, reconnect: false })
      return
    }
    if (code === CloseCodes.NORMAL) {
      this._stopped = true
      this._emit('close', { code, reason, reconnect: false })
      this._failQueued(new SwitchboardError('closed', 'the server closed the connection (1000)'))
      return
    }
    if (code === CloseCodes.AUTH_FAILED || code === CloseCodes.FORBIDDEN) {
      this._afterAuthClose(code, reason)
      return
    }
    let delay
    if (code === CloseCodes.GOING_AWAY || code === CloseCodes.TRY_AGAIN_LATER) {
      delay = Math.floor(this._random() * this._minDelay)
    } else {
      delay = backoffDelay(this._attempt, { minDelay: this._minDelay, maxDelay: this._maxDelay, random: this._random })
      this._attempt++
    }
    this._scheduleReconnect(code, reason, delay)
  }

  // After 4001/4003 the client reconnects only if getToken yields a token it has not used.
  async _afterAuthClose(code, reason) {
    const what = code === CloseCodes.AUTH_FAILED ? 'unauthorized' : 'forbidden'
    let token = null
    if (this._getToken) {
      try {
        token = await this._getToken({ reason: 'reconnect' })
      } catch (err) {
        this._reportError(new SwitchboardError('token_error', `getToken failed: ${errText(err)}`, { cause: err }))
      }
    }
    if (this._stopped || this._ws || this._reconnectTimer !== null) {
      // close() or connect() was called meanwhile.
      if (this._stopped) this._emit('close', { code, reason, reconnect: false })
      return
    }
    if (token != null && token !== '' && String(token) !== this._lastToken) {
      this._nextToken = String(token)
      const delay = backoffDelay(this._attempt, { minDelay: this._minDelay, maxDelay: this._maxDelay, random: this._random })
      this._attempt++
      this._scheduleReconnect(code, reason, delay)
      return
    }
    this._stopped = true
    this._emit('close', { code, reason, reconnect: false })
    this._reportError(
      new SwitchboardError(what, `the server closed the connection (${code} ${reason}) and there is no new token; not reconnecting`, {
        closeCode: code,
        reason,
      }),
    )
    this._failQueued(new SwitchboardError('closed', `the server closed the connection (${code})`))
  }

  _scheduleReconnect(code, reason, delay) {
    this._reconnectTimer = this._setTimeout(() => {
      this._reconnectTimer = null
      if (!this._stopped && !this._ws) this._open()
    }, delay)
    this._emit('close', { code, reason, reconnect: true, delay })
  }

  // _giveUp stops the client for a reason reconnecting cannot cure.
  _giveUp(err) {
    const ws = this._ws
    this._stopped = true
    this._reportError(err)
    if (ws) {
      this._detach(ws, 1000, err.code)
      this._onClose(this._gen, 1000, err.message)
    }
    this._failQueued(new SwitchboardError('closed', `the client stopped: ${err.message}`, { cause: err }))
  }

  // _abandon drops the socket of generation gen and reconnects with backoff.
  _abandon(gen, reason) {
    if (gen !== this._gen || !this._ws) return
    this._detach(this._ws, CLIENT_ABANDON_CODE, reason)
    this._onClose(gen, CloseCodes.ABNORMAL, reason)
  }

  // _detach stops listening to ws and closes it.
  _detach(ws, code, reason) {
    ws.onopen = ws.onmessage = ws.onclose = null
    ws.onerror = noop // the ws package throws on an 'error' event without a listener
    try {
      if (typeof ws.terminate === 'function' && code !== 1000) ws.terminate()
      else ws.close(code, String(reason).slice(0, 120))
    } catch {
      // already closed
    }
  }

  // _touch notes a sign of life of the server and re-arms the watchdog: a connection silent
  // for two ping intervals is dead.
  _touch() {
    if (this._pingInterval <= 0) return
    if (this._watchdog !== null) this._clearTimeout(this._watchdog)
    const gen = this._gen
    this._watchdog = this._setTimeout(() => {
      this._watchdog = null
      if (gen === this._gen) this._abandon(gen, 'no message from the server for two ping intervals')
    }, this._pingInterval * 2000)
  }

  // ---- messages -----------------------------------------------------------------------

  _onFrame(data) {
    if (typeof data !== 'string') return // the JSON protocol uses text frames only
    if (this._protocol !== Subprotocols.V1_BATCH || !data.includes('\n')) {
      this._onText(data)
      return
    }
    // A batch: one envelope per line. Stop if a message ends this socket.
    const gen = this._gen
    for (const line of data.split('\n')) {
      if (gen !== this._gen) return
      if (line.trim() !== '') this._onText(line)
    }
  }

  // _onText handles one JSON envelope.
  _onText(data) {
    let msg
    try {
      msg = JSON.parse(data)
    } catch {
      this._reportError(new SwitchboardError('bad_message', 'the server sent a frame that is not JSON'))
      return
    }
    if (!isObject(msg) || typeof msg.type !== 'string') return
    this._touch()
    if (!this._advance(msg)) return // a publication the client has already had
    this._emit('message', msg)
    const payload = msg.payload === undefined ? {} : msg.payload
    const cid = msg.correlation_id
    if (msg.type === 'PING') {
      this._sendFrame({ type: 'PONG', id: this._nextId(), correlation_id: msg.id != null ? String(msg.id) : '', payload: {} })
    } else if (typeof cid === 'string' && cid !== '' && this._pending.has(cid)) {
      const entry = this._pending.get(cid)
      this._pending.delete(cid)
      entry.finish()
      if (msg.type === 'ERROR') {
        entry.reject(serverError(payload, entry.type))
      } else {
        entry.onReply(msg) // at once: the messages that follow in the same frame depend on it
        entry.resolve(msg)
      }
      return
    } else if (msg.type === 'ERROR') {
      const err = serverError(payload)
      if (err.code === 'token_expiring') this._refresh(this._gen)
      else this._reportError(err)
    }
    if (typeof msg.topic === 'string' && msg.topic !== '') {
      const rec = this._subs.get(msg.topic)
      if (rec) {
        for (const sub of [...rec.subs]) {
          if (sub._closed) continue
          try {
            sub._handler.call(undefined, payload, msg)
          } catch (err) {
            this._handlerThrew(err, `subscription to ${msg.topic}`)
          }
        }
      }
    }
    this._emit(msg.type, payload, msg)
  }

  _sendSubscribe(topics) {
    const recs = new Map()
    for (const t of topics) {
      const rec = this._subs.get(t)
      if (rec) {
        rec.status = 'sent'
        recs.set(t, rec)
      }
    }
    if (recs.size === 0) return
    const gen = this._gen
    const payload = { subscriptions: [...recs.keys()] }
    const since = new Map() // topic → the position whose recovery is asked
    if (this._recover) {
      for (const [t, rec] of recs) if (rec.position) since.set(t, { ...rec.position })
      if (since.size > 0) payload.recover = Object.fromEntries(since)
    }
    // SUBSCRIBE_SUCCESS is taken in as it arrives, before the publications that follow it
    // (the recovered ones, in the same frame with batching), whose positions depend on it.
    const onSuccess = (reply) => {
      if (reply.type === 'SUBSCRIBE_SUCCESS') this._subscribed(recs, since, reply.payload)
    }
    this._call('SUBSCRIBE', payload, onSuccess).then(
      (reply) => {
        if (gen !== this._gen || reply.type === 'SUBSCRIBE_SUCCESS') return
        // SUBSCRIBE_FAILURE: all or nothing. Drop the refused topics, retry the others.
        const p = isObject(reply.payload) ? reply.payload : {}
        const refused = Array.isArray(p.subscriptions) ? p.subscriptions.map(String) : [...recs.keys()]
        const reasons = isObject(p.errors) ? p.errors : {}
        const retry = []
        for (const [t, rec] of recs) {
          if (this._subs.get(t) !== rec) continue
          rec.resyncing = false
          if (!refused.includes(t)) {
            rec.status = 'pending'
            retry.push(t)
            continue
          }
          const reason = String(reasons[t] || p.reason || 'refused')
          this._subs.delete(t)
          const err = new SwitchboardError(reason, `subscription to ${t} refused: ${reason}`, { payload: p, topic: t })
          for (const sub of rec.subs) sub._fail(err)
          this._reportError(err)
        }
        if (retry.length > 0 && retry.length < recs.size) this._sendSubscribe(retry)
      },
      (err) => {
        if (gen !== this._gen) return
        for (const [t, rec] of recs) {
          if (this._subs.get(t) !== rec) continue
          rec.status = 'pending'
          rec.resyncing = false
        }
        if (err.code !== 'disconnected') this._reportError(err) // restored on the next connection
      },
    )
  }

  // _subscribed takes in a SUBSCRIBE_SUCCESS for recs: the topics are live, at the positions
  // it gives, and the `recovery` event reports each recovery that was asked.
  _subscribed(recs, since, payload) {
    const p = isObject(payload) ? payload : {}
    const recovered = isObject(p.recovered) ? p.recovered : {}
    const positions = isObject(p.positions) ? p.positions : {}
    for (const [t, rec] of recs) {
      if (this._subs.get(t) !== rec) continue
      const resync = rec.resyncing
      rec.status = 'active'
      rec.resyncing = false
      const ok = recovered[t] === true
      const position = toPosition(positions[t])
      this._subscribedAt(rec, position, ok)
      // A resubscription after a jump that recovered nothing and got no position (the
      // server could not read the history): go on from the next publication, whatever it is.
      if (resync && !ok && !position) rec.position = null
      for (const sub of rec.subs) sub._confirm()
      if (since.has(t) && t in recovered) {
        this._emit('recovery', { topic: t, recovered: ok, since: since.get(t), position })
      }
    }
  }

  // _advance notes the position of a topic publication. It returns false for a publication
  // the handlers must not get: a duplicate (at or before the topic's position in the same
  // epoch: a recovery and the live stream may overlap), one after a jump in seq (see
  // _resync), and those of a subscription being replaced after a jump.
  _advance(msg) {
    if (typeof msg.topic !== 'string' || msg.topic === '') return true
    const rec = this._subs.get(msg.topic)
    const pos = toPosition(msg)
    if (!rec || !pos) return true
    if (rec.resyncing) return false // the new subscription recovers it, in order
    const own = rec.position
    if (own && own.epoch === pos.epoch && pos.seq <= own.seq) return false
    if (own && rec.status === 'active' && this._recover && jumps(own, pos)) {
      this._resync(msg.topic, rec, own.epoch === pos.epoch ? own : { seq: 0, epoch: pos.epoch })
      return false
    }
    rec.position = pos
    return true
  }

  // _resync replaces the subscription to topic, whose publications jumped past the client's
  // position (the server lost some and could not fill the gap from the history), by one
  // that recovers from since: UNSUBSCRIBE, then SUBSCRIBE with recover. The handlers get the
  // missed publications in order if the history still has them; otherwise the `recovery`
  // event says recovered: false and the application reloads. Until the answer, the old
  // subscription's publications are dropped: the new one sends them again.
  _resync(topic, rec, since) {
    rec.position = { ...since }
    rec.resyncing = true
    rec.status = 'sent'
    this._call('UNSUBSCRIBE', { subscriptions: [topic] }).catch(noop)
    this._sendSubscribe([topic])
  }

  // _subscribedAt takes the position a SUBSCRIBE_SUCCESS gave for a topic: the stream's
  // latest. After a recovery the client keeps its own, which the recovered publications
  // advance; otherwise the server's is where the client now is, unless the client has seen
  // further already (publications may come before the reply).
  _subscribedAt(rec, position, recovered) {
    if (!position) return
    const own = rec.position
    if (recovered && own && own.epoch === position.epoch) return
    if (own && own.epoch === position.epoch && own.seq >= position.seq) return
    rec.position = position
  }

  _removeSubscription(sub) {
    const rec = this._subs.get(sub.topic)
    if (!rec || !rec.subs.delete(sub)) return
    if (rec.subs.size > 0) return
    this._subs.delete(sub.topic)
    if (this._ready && rec.status !== 'pending') {
      this._call('UNSUBSCRIBE', { subscriptions: [sub.topic] }).catch(noop)
    }
  }

  // _call sends a control message on the current socket at once and waits for its reply.
  // onReply, if given, is called with the reply as soon as it is read (not an ERROR), before
  // the messages after it.
  _call(type, payload, onReply) {
    const msg = { type, id: this._nextId(), payload }
    const promise = this._track(msg.id, type, this._requestTimeout, onReply)
    this._sendTracked(msg)
    return promise
  }

  // _track registers a request awaiting its reply.
  _track(id, type, timeout, onReply = noop) {
    return new Promise((resolve, reject) => {
      const entry = { type, resolve, reject, onReply, sent: false, timer: null, finish: noop }
      if (timeout > 0) {
        entry.timer = this._setTimeout(() => {
          if (!this._pending.has(id)) return
          this._pending.delete(id)
          this._outbox = this._outbox.filter((q) => q.msg.id !== id)
          reject(new SwitchboardError('timeout', `no reply to ${type} within ${timeout} ms`))
        }, timeout)
        entry.finish = () => this._clearTimeout(entry.timer)
      }
      this._pending.set(id, entry)
    })
  }

  _sendTracked(msg) {
    const entry = this._pending.get(msg.id)
    if (!entry) return
    entry.sent = true
    if (!this._sendFrame(msg)) {
      this._pending.delete(msg.id)
      entry.finish()
      entry.reject(new SwitchboardError('disconnected', `${msg.type} not sent: the connection is closed`))
    }
  }

  _sendFrame(msg) {
    const ws = this._ws
    if (!ws || ws.readyState !== 1) return false
    try {
      ws.send(JSON.stringify(msg))
      return true
    } catch (err) {
      this._reportError(new SwitchboardError('bad_message', `cannot send ${msg.type}: ${errText(err)}`, { cause: err }))
      return false
    }
  }

  _trimOutbox() {
    let over = this._outbox.length - this._maxQueue
    for (let i = 0; over > 0 && i < this._outbox.length; ) {
      if (this._outbox[i].tracked) {
        i++
        continue
      }
      const [dropped] = this._outbox.splice(i, 1)
      over--
      this._reportError(new SwitchboardError('queue_full', `${dropped.msg.type} dropped: more than ${this._maxQueue} messages queued`))
    }
  }

  // _failQueued rejects every request and drops every message still waiting.
  _failQueued(err) {
    this._outbox = []
    for (const [id, entry] of this._pending) {
      this._pending.delete(id)
      entry.finish()
      entry.reject(err)
    }
  }

  _nextId() {
    return String(++this._seq)
  }

  // ---- events ---------------------------------------------------------------------------

  _setState(state) {
    const prev = this._state
    if (prev === state) return
    this._state = state
    this._emit('state', state, prev)
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event)
    if (!set) return false
    for (const h of [...set]) {
      try {
        h.apply(this, args)
      } catch (err) {
        this._handlerThrew(err, `'${event}' handler`)
      }
    }
    return true
  }

  _handlerThrew(err, where) {
    if (this._emittingError > 0) {
      // A handler of 'error' threw: report it without going round again.
      console.error(`switchboard: ${where} threw:`, err)
      return
    }
    this._reportError(new SwitchboardError('handler_error', `${where} threw: ${errText(err)}`, { cause: err }))
  }

  _reportError(err) {
    this._emittingError++
    try {
      if (!this._emit('error', err)) console.error('switchboard:', err)
    } finally {
      this._emittingError--
    }
  }
}

export default Switchboard

// ---- helpers ------------------------------------------------------------------------------

function eventName(event) {
  if (typeof event !== 'string' || event === '') throw new TypeError('switchboard: event name must be a non-empty string')
  if (CLIENT_EVENTS.has(event)) return event
  return TYPE_ALIASES[event] || event
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

// jumps reports whether pos, a publication's position, skips publications after own, the
// last position the client has: a seq beyond the next one in the same epoch, or beyond the
// first one of a new epoch.
function jumps(own, pos) {
  if (pos.epoch === own.epoch) return pos.seq > own.seq + 1
  return pos.seq > 1
}

// toPosition returns v's {seq, epoch} when v holds a valid history position (a message, a
// SUBSCRIBE_SUCCESS entry, an application's saved position), or null.
function toPosition(v) {
  if (!isObject(v)) return null
  const { seq, epoch } = v
  if (!Number.isSafeInteger(seq) || seq < 0 || typeof epoch !== 'string' || epoch === '') return null
  return { seq, epoch }
}

function nonNegative(v, def) {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : def
}

function errText(err) {
  return err && typeof err.message === 'string' ? err.message : String(err)
}

function serverError(payload, requestType) {
  const p = isObject(payload) ? payload : {}
  const code = typeof p.code === 'string' && p.code !== '' ? p.code : 'unknown'
  const text = typeof p.message === 'string' && p.message !== '' ? p.message : code
  return new SwitchboardError(code, requestType ? `${requestType}: ${text}` : text, { payload: p })
}

function authError(reason) {
  return new SwitchboardError('auth_failed', `authentication failed: ${reason}`, { reason })
}

function toWebSocketURL(url) {
  let s = String(url)
  if (/^https?:/i.test(s)) return s.replace(/^http/i, 'ws')
  if (/^wss?:/i.test(s)) return s
  const loc = globalThis.location
  if (loc && typeof loc.href === 'string') {
    const u = new URL(s, loc.href)
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:'
    return u.href
  }
  return s
}
