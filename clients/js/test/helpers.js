// Test helpers: the real Go server (built once per test process from the repository),
// an HTTP API client, tokens, and small waiting utilities.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const JWT_SECRET = 'js-client-test-secret-0123456789abcdef'
export const API_KEY = 'js-client-test-api-key'

let built = null

// goBinary finds the go command: on PATH, or where the official installer puts it.
function goBinary() {
  for (const dir of (process.env.PATH || '').split(':')) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go')
  }
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go'
  return 'go'
}

// serverBinary builds cmd/switchboard once per process, or uses $SWITCHBOARD_BIN.
export function serverBinary() {
  if (process.env.SWITCHBOARD_BIN) return process.env.SWITCHBOARD_BIN
  if (built) return built.bin
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-js-'))
  const bin = join(dir, 'switchboard')
  execFileSync(goBinary(), ['build', '-o', bin, './cmd/switchboard'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  built = { bin, dir }
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return bin
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolvePort(port))
    })
  })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * startServer runs the server binary on 127.0.0.1:port in dev mode with the test secret and
 * API key, and waits for /healthz. extraArgs are more flags.
 */
export async function startServer({ port, args: extraArgs = [] } = {}) {
  port = port ?? (await freePort())
  const bin = serverBinary()
  const args = [
    '--addr', `127.0.0.1:${port}`,
    '--dev',
    '--jwt-secret', JWT_SECRET,
    '--api-key', API_KEY,
    '--conn-rate-per-ip', '-1',
    '--log-level', 'warn',
    '--shutdown-timeout', '5s',
    ...extraArgs,
  ]
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (s) => {
    stderr += s
  })
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })))
  const base = `http://127.0.0.1:${port}`
  const server = {
    port,
    base,
    wsURL: `ws://127.0.0.1:${port}/ws`,
    proc,
    exited,
    get stderr() {
      return stderr
    },
    // stop ends the process (SIGTERM: graceful, clients get 1001; SIGKILL: they get 1006).
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      await exited
    },
    api: (path, body) => api(base, path, body),
    publishPipelined: (topic, payloads) => publishPipelined(port, topic, payloads),
    health: async () => (await fetch(`${base}/healthz`)).json(),
    devToken: async (user, ttl) => {
      const q = new URLSearchParams({ user: String(user) })
      if (ttl) q.set('ttl', ttl)
      const res = await fetch(`${base}/api/dev/token?${q}`)
      if (!res.ok) throw new Error(`dev token: HTTP ${res.status}: ${await res.text()}`)
      return (await res.json()).token
    },
  }
  const deadline = Date.now() + 15000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}:\n${stderr}`)
    try {
      const res = await fetch(`${base}/healthz`)
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop('SIGKILL')
      throw new Error(`server not healthy within 15 s:\n${stderr}`)
    }
    await sleep(50)
  }
  return server
}

// api POSTs a JSON body to the server's HTTP API with the test API key.
export async function api(base, path, body) {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`POST ${path}: HTTP ${res.status}: ${text}`)
  return JSON.parse(text)
}

/**
 * publishPipelined POSTs one /api/publish per payload, all written at once on a single
 * HTTP/1.1 connection: the server handles pipelined requests one after the other, so the
 * publications are quick and in order. Resolves once every request was answered 200.
 */
export function publishPipelined(port, topic, payloads) {
  let requests = ''
  for (const payload of payloads) {
    const body = JSON.stringify({ topic, payload })
    requests +=
      'POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      `Authorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }
  return new Promise((resolveAll, reject) => {
    const sock = connect(port, '127.0.0.1')
    let answers = ''
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`pipelined publish: not every request answered in 10 s:\n${answers.slice(0, 500)}`))
    }, 10000)
    sock.setEncoding('utf8')
    sock.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    sock.on('data', (s) => {
      answers += s
      const statuses = answers.match(/^HTTP\/1\.1 \d{3}/gm) || []
      if (statuses.length < payloads.length) return
      clearTimeout(timer)
      sock.destroy()
      const bad = statuses.filter((st) => !st.endsWith(' 200'))
      if (bad.length > 0) reject(new Error(`pipelined publish: ${bad.length} failed: ${bad[0]}`))
      else resolveAll()
    })
    sock.write(requests)
  })
}

// makeToken signs a token with the binary's `token` subcommand.
export function makeToken(user, ttl = '1h') {
  return execFileSync(serverBinary(), ['token', '--user', String(user), '--ttl', ttl, '--secret', JWT_SECRET], {
    encoding: 'utf8',
  }).trim()
}

/**
 * nextEvent resolves with the arguments of the client's next `event` for which pred
 * (given the same arguments) is true; rejects after timeout ms.
 */
export function nextEvent(client, event, pred = () => true, timeout = 5000) {
  return new Promise((resolveEvent, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`no '${event}' event within ${timeout} ms (state ${client.state})`))
    }, timeout)
    const off = client.on(event, (...args) => {
      if (!pred(...args)) return
      off()
      clearTimeout(timer)
      resolveEvent(args)
    })
  })
}

// untilState resolves once the client is in state (at once if it is already).
export function untilState(client, state, timeout = 5000) {
  if (client.state === state) return Promise.resolve()
  return nextEvent(client, 'state', (s) => s === state, timeout)
}

// waitFor polls cond until it is true.
export async function waitFor(cond, timeout = 5000, what = 'condition') {
  const deadline = Date.now() + timeout
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

// Inbox collects what a handler receives and lets a test wait for it.
export class Inbox {
  constructor() {
    this.items = []
    this.waiters = []
    this.push = this.push.bind(this)
  }

  push(...args) {
    this.items.push(args)
    for (const w of [...this.waiters]) {
      if (w.pred(...args)) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        clearTimeout(w.timer)
        w.resolve(args)
      }
    }
  }

  // next resolves with the first item, already received or to come, matching pred.
  next(pred = () => true, timeout = 5000) {
    const found = this.items.find((args) => pred(...args))
    if (found) return Promise.resolve(found)
    return new Promise((resolveItem, reject) => {
      const w = { pred, resolve: resolveItem }
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        reject(new Error(`nothing matching received within ${timeout} ms (got ${this.items.length})`))
      }, timeout)
      this.waiters.push(w)
    })
  }
}
