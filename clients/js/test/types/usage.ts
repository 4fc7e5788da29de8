// Compiled by `tsc --noEmit -p .` (npm test): the declarations must accept real use and
// reject misuse. It imports the package by its own name, through package.json "exports".
import Switchboard, {
  Switchboard as Named,
  SwitchboardError,
  Subscription,
  States,
  CloseCodes,
  backoffDelay,
  Subprotocols,
  type Message,
  type State,
  type NotificationPayload,
  type SwitchboardOptions,
  type WebSocketLike,
  type StreamPosition,
  type RecoveryInfo,
} from '@switchboardrt/client'

// A stand-in for the `ws` package's class (the test has no @types/ws).
declare const WS: new (url: string) => WebSocketLike

const options: SwitchboardOptions = {
  WebSocket: WS,
  getToken: async ({ reason }) => (reason === 'refresh' ? 'fresh' : 'first'),
  minDelay: 250,
  maxDelay: 10_000,
  requestTimeout: 5_000,
  clock: { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (t) => clearTimeout(t), random: Math.random },
}
declare function setTimeout(fn: () => void, ms: number): number
declare function clearTimeout(t: number): void

const client: Switchboard = new Named('ws://127.0.0.1:8080/ws', options)
new Switchboard({ href: 'wss://example.com/ws' }, { getToken: () => 'sync-token', autoConnect: false }).connect()
new Switchboard('/ws', { getToken: () => null })

const s: State = client.state
const ok: boolean = s === States.AUTHENTICATED || s === 'connected'
const code: number = CloseCodes.AUTH_FAILED
const id: string | null = client.clientId
const protocol: string | null = client.protocol
const batchProtocol: 'switchboard.v1.batch' = Subprotocols.V1_BATCH
new Switchboard('/ws', { batching: false })
const user: string | null = client.userId
const topics: string[] = client.topics

const sub: Subscription = client.subscribe<{ data: { n: number } }>('news', (payload, msg) => {
  const n: number = payload.data.n
  const t: string | undefined = msg.topic
  void n, t
})
sub.ready.then(() => sub.unsubscribe()).catch((err: SwitchboardError) => err.code)
const closed: boolean = sub.closed
client.subscribe('chat:1', () => {}, { since: { seq: 41, epoch: 'e1' } })
const where: StreamPosition | null = client.position('chat:1')
client.on('recovery', ({ topic, recovered, since, position }: RecoveryInfo) => {
  const missed: number = recovered && position ? position.seq - since.seq : -1
  void [topic, missed]
})
new Switchboard('/ws', { recover: false })

const off = client.on('state', (state, previous) => {
  const both: State[] = [state, previous]
  void both
})
off()
client.on('error', (err) => {
  const c: string = err.code
  void c
})
client.on('close', ({ code, reason, reconnect, delay }) => void [code, reason, reconnect, delay])
client.on('authenticated', ({ userId, expiresAt, refreshed }) => void [userId, expiresAt, refreshed])
client.on('notification', (n: NotificationPayload) => void n.title)
client.on('data', (payload) => void payload.data)
client.on('message', (m: Message) => void m.type)
client.on('ORDER_SHIPPED', (payload, msg) => void [payload, msg.id])
client.once('event', (payload) => void payload.event)
client.off('data')

async function requests(): Promise<void> {
  const pong: Message = await client.request('PING', {}, { timeout: 1000 })
  const r = await client.action<{ ok: boolean }>({ action: 'cancel', order_id: 1042 })
  const b: boolean = r.ok
  const msgId: string = client.send('CHAT', { text: 'hi' })
  try {
    await client.request('ACTION', { x: 1 })
  } catch (e) {
    if (e instanceof SwitchboardError && e.code === 'unknown_type') return
  }
  void [pong, b, msgId]
}

const d: number = backoffDelay(3, { minDelay: 500, maxDelay: 20_000, random: () => 0.5 })
client.close('bye')

// Misuse the declarations must reject.
// @ts-expect-error the state is not writable
client.state = 'connected'
// @ts-expect-error subscribe needs a handler
client.subscribe('news')
// @ts-expect-error a 'state' handler gets states, not numbers
client.on('state', (state: number) => state)
// @ts-expect-error unknown option types are refused
new Switchboard('ws://x/ws', { minDelay: '1s' })
// @ts-expect-error a position's seq is a number
client.subscribe('news', () => {}, { since: { seq: '41', epoch: 'e' } })
// @ts-expect-error recovery info says recovered, a boolean
client.on('recovery', (info: { recovered: string }) => info)
// @ts-expect-error getToken returns a string, not a number
new Switchboard('ws://x/ws', { getToken: () => 42 })

void [where, ok, code, id, protocol, batchProtocol, user, topics, closed, requests, d]
