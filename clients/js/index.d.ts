// Type declarations of @switchboardrt/client (index.js). Wire protocol: docs/protocol.md.

/** The client's connection state. */
export type State = 'disconnected' | 'connecting' | 'connected' | 'authenticated'

/** The states, by name. */
export declare const States: Readonly<{
  DISCONNECTED: 'disconnected'
  CONNECTING: 'connecting'
  CONNECTED: 'connected'
  AUTHENTICATED: 'authenticated'
}>

/** The WebSocket close codes of protocol v1 that the client acts on. */
export declare const CloseCodes: Readonly<{
  NORMAL: 1000
  GOING_AWAY: 1001
  ABNORMAL: 1006
  POLICY_VIOLATION: 1008
  MESSAGE_TOO_BIG: 1009
  INTERNAL_ERROR: 1011
  TRY_AGAIN_LATER: 1013
  AUTH_FAILED: 4001
  FORBIDDEN: 4003
}>

/** Default options; delays in milliseconds. */
export declare const defaults: Readonly<{
  minDelay: number
  maxDelay: number
  requestTimeout: number
  connectTimeout: number
  maxQueue: number
  autoConnect: boolean
  batching: boolean
  recover: boolean
}>

/** The WebSocket subprotocols of wire protocol v1. */
export declare const Subprotocols: Readonly<{
  /** One JSON envelope per text frame. */
  V1: 'switchboard.v1'
  /** Several envelopes per text frame, separated by "\n", when several are queued. */
  V1_BATCH: 'switchboard.v1.batch'
}>

/** A message of wire protocol v1, as received. Unknown fields are kept. */
export interface Message<P = any> {
  type: string
  payload: P
  id?: string
  timestamp?: number
  correlation_id?: string
  topic?: string
  seq?: number
  epoch?: string
  [field: string]: unknown
}

/** The payload of a NOTIFICATION. */
export interface NotificationPayload {
  title?: string
  message?: string
  level?: 'info' | 'success' | 'warning' | 'error'
  actions?: Array<{ id: string; label: string; url?: string; [field: string]: unknown }>
  [field: string]: unknown
}

/** The payload of a DATA message. */
export interface DataPayload<D = any> {
  resource?: string
  data?: D
  [field: string]: unknown
}

/** The payload of an EVENT message. */
export interface EventPayload<D = any> {
  event?: string
  data?: D
  [field: string]: unknown
}

/** What `getToken` is called for. */
export interface TokenRequest {
  /**
   * `connect`: a new connection; `retry`: the server refused the previous token;
   * `refresh`: the server sent ERROR token_expiring; `reconnect`: the server closed the
   * connection with 4001 or 4003 (the client reconnects only if the token is a new one).
   */
  reason: 'connect' | 'retry' | 'refresh' | 'reconnect'
}

/** A token, or null/undefined/'' for none (an anonymous connection, where the server allows it). */
export type TokenResult = string | null | undefined

/** The minimal WebSocket the client needs: the browser's, or the `ws` package's in Node. */
export interface WebSocketLike {
  readonly readyState: number
  /** The negotiated subprotocol ('' for none). */
  readonly protocol?: string
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: any) => any) | null
  onmessage: ((ev: { data: any }) => any) | null
  onclose: ((ev: { code: number; reason: string }) => any) | null
  onerror: ((ev: any) => any) | null
}

/** A WebSocket class: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

/** Timers and randomness, injectable for tests. */
export interface Clock {
  setTimeout?: (fn: () => void, ms: number) => unknown
  clearTimeout?: (handle: any) => void
  random?: () => number
}

export interface SwitchboardOptions {
  /**
   * Returns the token to authenticate with (a JWT), synchronously or as a promise. Called
   * for every new connection, on ERROR token_expiring, and after a 4001/4003 close. With
   * getToken the client always authenticates; without it, only connections to servers that
   * do not require authentication work.
   */
  getToken?: (request: TokenRequest) => TokenResult | Promise<TokenResult>
  /** The WebSocket class. Default: `globalThis.WebSocket`. In Node 20: `WebSocket` from `ws`. */
  WebSocket?: WebSocketConstructor | (new (url: string, protocols?: string[]) => any)
  /** Upper bound of the first reconnect delay, doubled on each failed attempt (full jitter). Default 500 ms. */
  minDelay?: number
  /** Cap of the reconnect delay. Default 20000 ms. */
  maxDelay?: number
  /** Default timeout of request() and of the protocol's own requests. Default 10000 ms; 0: none. */
  requestTimeout?: number
  /** Time for a new connection to become ready (open, CONNECT_ACK, authenticated). Default 10000 ms; 0: none. */
  connectTimeout?: number
  /** Most messages of send() queued while disconnected; the oldest are dropped beyond. Default 256. */
  maxQueue?: number
  /** Connect in the constructor. Default true; with false, call connect(). */
  autoConnect?: boolean
  /**
   * Ask for the `switchboard.v1.batch` subprotocol (then `switchboard.v1`), in which the
   * server may put several messages in one frame when several are queued: fewer frames
   * for busy clients. Default true; false asks for `switchboard.v1` only. The endpoint
   * must accept these subprotocols (the server's /ws does). See {@link Switchboard.protocol}.
   */
  batching?: boolean
  /**
   * After a reconnect, ask the server to recover what was published to topics with history
   * while the client was away (SUBSCRIBE "recover"), and report it with the `recovery`
   * event. Also, when a topic's publications jump past the next seq (the server lost some
   * and could not fill the gap), hold that publication back and subscribe again with
   * recover (UNSUBSCRIBE, SUBSCRIBE), so that the handlers get every seq in order or a
   * `recovery` event with `recovered: false`. Default true; false delivers jumps as they come.
   */
  recover?: boolean
  /** Timer function, for tests. Default: the global setTimeout. */
  setTimeout?: (fn: () => void, ms: number) => unknown
  /** Timer function, for tests. Default: the global clearTimeout. */
  clearTimeout?: (handle: any) => void
  /** Random source in [0, 1), for tests. Default: Math.random. */
  random?: () => number
  /** setTimeout, clearTimeout and random in one object, for tests. */
  clock?: Clock
}

/** Options of request() and action(). */
export interface RequestOptions {
  /** Timeout in milliseconds; 0: none. Default: the client's requestTimeout. */
  timeout?: number
}

/** The argument of the `close` event. */
export interface CloseInfo {
  /** The WebSocket close code (1006 when the connection dropped or the client gave it up). */
  code: number
  reason: string
  /** Whether the client will reconnect. */
  reconnect: boolean
  /** The delay before it does, in milliseconds, when it will. */
  delay?: number
}

/** The argument of the `authenticated` event. */
export interface AuthInfo {
  userId: string | null
  /** When the token expires, in seconds since the epoch. */
  expiresAt: number | null
  /** True for a token refresh on a live connection. */
  refreshed: boolean
}

/** A place in a topic's history: the seq of a publication in the stream named by epoch. */
export interface StreamPosition {
  seq: number
  epoch: string
}

/** Options of subscribe(). */
export interface SubscribeOptions {
  /**
   * A position the application kept (e.g. that of the state it loaded): the first SUBSCRIBE
   * asks the server for what was published after it, as a reconnect does.
   */
  since?: StreamPosition
}

/**
 * The argument of the `recovery` event: after a reconnect, after a subscribe with `since`,
 * and after a jump in a topic's seq (then `since` is the last position the handlers got).
 */
export interface RecoveryInfo {
  topic: string
  /**
   * True when the server sends every publication missed since `since` (to the topic's
   * handlers, in order, before the new ones); false when some are lost and the application
   * should reload the topic's state.
   */
  recovered: boolean
  /** The position the client asked to recover from. */
  since: StreamPosition
  /** The topic's latest position on the server when it answered, or null. */
  position: StreamPosition | null
}

/** Handler of messages: the payload, then the whole message. */
export type MessageHandler<P = any> = (payload: P, message: Message<P>) => void

/** An error of the client or of the server. */
export declare class SwitchboardError extends Error {
  constructor(
    code: string,
    message: string,
    details?: { cause?: unknown; payload?: object; closeCode?: number; reason?: string; topic?: string },
  )
  /**
   * A protocol ERROR code (`unknown_type`, `unauthorized`, `forbidden`, `rate_limited`,
   * `bad_message`, `too_large`, `internal`, `token_expiring`), a SUBSCRIBE_FAILURE reason
   * (`forbidden`, `invalid_topic`, `too_many_subscriptions`, `internal`), or the client's
   * own: `timeout`, `disconnected`, `closed`, `auth_failed`, `token_error`,
   * `handler_error`, `bad_message`, `queue_full`, `unsubscribed`, `connect_failed`.
   */
  code: string
  /** The payload of the server's ERROR or SUBSCRIBE_FAILURE, when there is one. */
  payload?: object
  /** The close code, for errors caused by a close. */
  closeCode?: number
  /** The AUTHENTICATE_FAILURE reason or close reason, when there is one. */
  reason?: string
  /** The refused topic, for a SUBSCRIBE_FAILURE. */
  topic?: string
}

/** A subscription to a topic. */
export declare class Subscription {
  private constructor()
  /** The topic. */
  readonly topic: string
  /**
   * Resolves when the server confirms the subscription; rejects with a SwitchboardError
   * whose code is the refusal reason. Awaiting it is optional.
   */
  readonly ready: Promise<void>
  /** Whether the subscription has ended (unsubscribed or refused). */
  readonly closed: boolean
  /** Ends the subscription; its handler is not called again. */
  unsubscribe(): void
}

/** backoffDelay returns a random delay in [0, min(maxDelay, minDelay · 2^attempt)) ms. */
export declare function backoffDelay(
  attempt: number,
  options?: { minDelay?: number; maxDelay?: number; random?: () => number },
): number

export interface SwitchboardEvents {
  state: (state: State, previous: State) => void
  error: (error: SwitchboardError) => void
  close: (info: CloseInfo) => void
  authenticated: (info: AuthInfo) => void
  recovery: (info: RecoveryInfo) => void
  message: (message: Message) => void
  data: MessageHandler<DataPayload>
  event: MessageHandler<EventPayload>
  notification: MessageHandler<NotificationPayload>
}

/** The handler type of an event name: a client event's own, or MessageHandler for a message type. */
export type HandlerOf<E extends string> = E extends keyof SwitchboardEvents ? SwitchboardEvents[E] : MessageHandler

/** Anything whose string form is a URL, such as a URL object. */
export interface URLLike {
  readonly href: string
  toString(): string
}

/** A client of a Switchboard server. */
export declare class Switchboard {
  /**
   * Creates a client and, unless `autoConnect` is false, starts connecting.
   * @param url the WebSocket endpoint (`wss://host/ws`); http(s) URLs and, in browsers, relative paths work too
   */
  constructor(url: string | URLLike, options?: SwitchboardOptions)
  /** The connection state. */
  readonly state: State
  /** The connection's ID (CONNECT_ACK client_id), or null. */
  readonly clientId: string | null
  /**
   * The subprotocol the server chose: 'switchboard.v1.batch', 'switchboard.v1', or '' for
   * none; null while no socket is open.
   */
  readonly protocol: string | null
  /** The authenticated user's ID, or null. */
  readonly userId: string | null
  /** When the token expires (seconds since the epoch), or null. */
  readonly expiresAt: number | null
  /** The subscribed topics. */
  readonly topics: string[]
  /** Starts connecting (or reconnects at once during a reconnect delay). */
  connect(): void
  /** Closes the connection with 1000 and stops reconnecting. */
  close(reason?: string): void
  /**
   * Subscribes to a topic; restored after every reconnect, with a recovery of what was
   * missed for topics with history.
   */
  subscribe<P = any>(topic: string, handler: MessageHandler<P>, options?: SubscribeOptions): Subscription
  /**
   * The client's position in a topic's history (that of the last publication received, or
   * the one the server gave on subscribing), or null.
   */
  position(topic: string): StreamPosition | null
  /** Sends a message and resolves with the reply whose correlation_id is its id. */
  request<P = any>(type: string, payload?: unknown, options?: RequestOptions): Promise<Message<P>>
  /** Sends an ACTION and resolves with the payload of its ACTION_RESULT. */
  action<R = any>(payload: unknown, options?: RequestOptions): Promise<R>
  /** Sends a message without waiting for a reply (queued while disconnected); returns its id. */
  send(type: string, payload?: unknown): string
  /**
   * Registers a handler of a client event (`state`, `error`, `close`, `authenticated`,
   * `recovery`, `message`), of `data` / `event` / `notification`, or of any message type (`'PING'`,
   * `'MY_TYPE'`). Returns a function that removes it.
   */
  on<E extends string>(event: E, handler: HandlerOf<E>): () => void
  /** Registers a handler called at most once; returns a function that removes it. */
  once<E extends string>(event: E, handler: HandlerOf<E>): () => void
  /** Removes a handler, or every handler of the event. */
  off<E extends string>(event: E, handler?: HandlerOf<E>): void
}

export default Switchboard
