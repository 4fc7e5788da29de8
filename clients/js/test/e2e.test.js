// Browser end-to-end tests: the server's demo page, which imports the built-in client from
// /switchboard.js, in a real headless Chromium driven by playwright-core, against the real
// Go server (cmd/switchboard).
//
// Chromium is Debian's, at /usr/bin/chromium (CHROMIUM_PATH overrides). Without it these
// tests are skipped, with a message, unless CI=true: then they fail.
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

import { chromium } from 'playwright-core'

import { startServer } from './helpers.js'

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const IN_CI = /^(1|true|yes)$/i.test(process.env.CI || '')
const RESULTS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'test-results')
// Generous bounds: they only limit how long a broken test hangs.
const WAIT = 15000
const TEST = { timeout: 90000 }

if (!existsSync(CHROMIUM)) {
  const why =
    `Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) ` +
    'or point CHROMIUM_PATH at a Chromium binary'
  if (IN_CI) {
    it('browser end-to-end tests', () => {
      assert.fail(`${why}. CI=true, so the browser tests may not be skipped.`)
    })
  } else {
    console.warn(`# SKIPPING the browser end-to-end tests: ${why}.`)
    it('browser end-to-end tests', { skip: why }, () => {})
  }
} else {
  browserTests()
}

function browserTests() {
  let context
  let profile
  let server
  const pages = new Set()

  before(async () => {
    profile = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'))
    // A persistent context is how Playwright takes a user data directory of our own.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    context.setDefaultTimeout(WAIT)
    server = await startServer()
  })

  after(async () => {
    for (const p of pages) await p.close().catch(() => {})
    await context?.close()
    await server?.stop()
    if (profile) rmSync(profile, { recursive: true, force: true })
  })

  // openDemo opens the demo page as user, waits until it is authenticated and subscribed
  // to its default topics, and returns the page. Uncaught page errors fail the test.
  async function openDemo(srv, user) {
    const page = await context.newPage()
    pages.add(page)
    page.errors = []
    page.on('pageerror', (err) => page.errors.push(err))
    await page.goto(`${srv.base}/?user=${encodeURIComponent(user)}`)
    await authenticated(page)
    await active(page, 'news')
    await active(page, `user:${user}:updates`)
    return page
  }

  async function closePage(page) {
    pages.delete(page)
    const errors = page.errors
    await page.close()
    assert.deepEqual(errors.map(String), [], 'uncaught errors in the page')
  }

  const badge = (page) => page.locator('#state')
  const authenticated = (page) => page.locator('#state[data-state="authenticated"]').waitFor()
  const active = (page, topic) => page.locator(`#subscriptions li[data-topic="${topic}"][data-status="active"]`).waitFor()
  // A message in the page's live log: type, topic (null: no topic) and a text of its payload.
  const logged = (page, type, topic, text) =>
    page.locator(`#log li.message[data-type="${type}"]${topic ? `[data-topic="${topic}"]` : ':not([data-topic])'}`, {
      hasText: text,
    })
  const toast = (page, text) => page.locator('#toasts .toast', { hasText: text })
  let markers = 0
  const marker = (what) => `${what}-${Date.now().toString(36)}-${++markers}`

  it('serves the client and the demo page connects and authenticates', TEST, async () => {
    const page = await openDemo(server, 1)
    assert.equal(await badge(page).textContent(), 'authenticated')
    assert.match(await page.locator('#client-id').textContent(), /^[0-9a-f-]{36}$/)
    assert.equal(await page.locator('#who').textContent(), 'alice (1)')
    assert.equal(await page.locator('.user[data-user="1"]').getAttribute('aria-pressed'), 'true')
    assert.deepEqual(await page.locator('#subscriptions li').evaluateAll((lis) => lis.map((li) => li.dataset.topic)), [
      'news',
      'user:1:updates',
    ])
    // The page runs the client served at /switchboard.js, as an ES module.
    const served = await page.evaluate(async () => {
      const res = await fetch('/switchboard.js')
      const mod = await import('/switchboard.js')
      return {
        type: res.headers.get('content-type'),
        exports: Object.keys(mod).sort(),
        live: window.switchboardDemo.client instanceof mod.Switchboard,
      }
    })
    assert.equal(served.type, 'text/javascript; charset=utf-8')
    assert.ok(served.exports.includes('Switchboard') && served.exports.includes('SwitchboardError'), served.exports.join())
    assert.equal(served.live, true)
    await closePage(page)
  })

  it('delivers a user notification to its user only and a topic broadcast to both users', TEST, async () => {
    const alice = await openDemo(server, 1)
    const bob = await openDemo(server, 2)
    assert.equal(await bob.locator('#who').textContent(), 'bob (2)')
    assert.notEqual(await alice.locator('#client-id').textContent(), await bob.locator('#client-id').textContent())

    // A notification to user 2 through the HTTP API (with the API key).
    const note = marker('note')
    const sent = await server.api('/api/users/2/notify', { title: 'For bob', message: note, level: 'warning' })
    assert.equal(sent.local_connections, 1)
    const card = toast(bob, note)
    await card.waitFor()
    assert.equal(await card.getAttribute('data-level'), 'warning')
    assert.equal(await card.locator('.title').textContent(), 'For bob')
    assert.equal(await card.locator('.message').textContent(), note)
    await logged(bob, 'NOTIFICATION', null, note).waitFor()

    // A publication to "news" reaches both subscribers. Alice sees it after anything the
    // server sent her before, so by then a misdirected notification would be there too.
    const news = marker('news')
    await server.api('/api/publish', { topic: 'news', payload: { resource: 'article', data: { headline: news } } })
    await logged(alice, 'DATA', 'news', news).waitFor()
    await logged(bob, 'DATA', 'news', news).waitFor()
    assert.equal(await toast(alice, note).count(), 0, 'alice got bob’s notification')
    assert.equal(await alice.locator('#log li.message[data-type="NOTIFICATION"]').count(), 0)

    // A message to alice's own topic stays hers.
    const own = marker('own')
    await server.api('/api/publish', { topic: 'user:1:updates', type: 'EVENT', payload: { event: own } })
    await logged(alice, 'EVENT', 'user:1:updates', own).waitFor()
    const after = marker('after')
    await server.api('/api/publish', { topic: 'news', payload: { n: after } })
    await logged(bob, 'DATA', 'news', after).waitFor()
    assert.equal(await bob.locator('#log li', { hasText: own }).count(), 0, 'bob got alice’s topic message')

    await closePage(alice)
    await closePage(bob)
  })

  it('sends ACTIONs, publishes and notifies through the dev routes (screenshot)', TEST, async () => {
    const alice = await openDemo(server, 1)
    const bob = await openDemo(server, 2)

    // Chromium pauses animation frames in background tabs, and Playwright's clicks wait
    // for them: the page being driven goes to the front.
    await alice.bringToFront()

    // An action the dev server does not know: ERROR.
    await alice.fill('#action-name', 'launch')
    await alice.click('#action-form button[type="submit"]')
    await alice.locator('#action-result.err').waitFor()
    assert.equal(await alice.locator('#action-result-type').textContent(), 'ERROR bad_message')
    assert.match(await alice.locator('#action-result-body').textContent(), /unknown action "launch"/)
    // echo: ACTION_RESULT with the payload and the user.
    await alice.fill('#action-name', 'echo')
    await alice.fill('#action-payload', '{"text": "hello from the browser"}')
    await alice.click('#action-form button[type="submit"]')
    await alice.locator('#action-result.ok').waitFor()
    assert.equal(await alice.locator('#action-result-type').textContent(), 'ACTION_RESULT')
    const result = JSON.parse(await alice.locator('#action-result-body').textContent())
    assert.deepEqual(result, { ok: true, action: 'echo', user_id: '1', echo: { action: 'echo', text: 'hello from the browser' } })

    // The publish form (POST /api/dev/publish, no API key) reaches both pages.
    const headline = marker('headline')
    await alice.fill('#pub-topic', 'news')
    await alice.selectOption('#pub-type', 'DATA')
    await alice.fill('#pub-payload', JSON.stringify({ resource: 'article', data: { headline } }))
    await alice.click('#publish-form button[type="submit"]')
    await alice.locator('#pub-status.ok').waitFor()
    await logged(alice, 'DATA', 'news', headline).waitFor()
    await logged(bob, 'DATA', 'news', headline).waitFor()
    // A bad payload is caught in the page.
    await alice.fill('#pub-payload', '{not json')
    await alice.click('#publish-form button[type="submit"]')
    await alice.locator('#pub-status.err').waitFor()
    await alice.fill('#pub-payload', JSON.stringify({ event: 'build', data: { status: 'green' } }))
    await alice.selectOption('#pub-type', 'EVENT')
    await alice.click('#publish-form button[type="submit"]')
    await logged(alice, 'EVENT', 'news', 'green').waitFor()

    // The notify form (POST /api/dev/notify): to bob, then to alice herself.
    const forBob = marker('review')
    await alice.fill('#notify-user', '2')
    await alice.fill('#notify-title', 'Review requested')
    await alice.fill('#notify-message', forBob)
    await alice.selectOption('#notify-level', 'info')
    await alice.click('#notify-form button[type="submit"]')
    await alice.locator('#notify-status.ok').waitFor()
    assert.match(await alice.locator('#notify-status').textContent(), /bob \(2\): 1 open connection/)
    await toast(bob, forBob).waitFor()
    await alice.fill('#notify-user', '1')
    await alice.fill('#notify-title', 'Deploy finished')
    await alice.fill('#notify-message', 'Version 2.4 is live in production.')
    await alice.selectOption('#notify-level', 'success')
    await alice.click('#notify-form button[type="submit"]')
    await toast(alice, 'Version 2.4 is live').waitFor()
    assert.equal(await toast(alice, forBob).count(), 0)

    // The screenshot artefact: the page with live messages, a toast and an ACTION result.
    await alice.evaluate(() => window.scrollTo(0, 0))
    await alice.waitForTimeout(400) // let the entry animations finish
    mkdirSync(RESULTS, { recursive: true })
    await alice.screenshot({ path: join(RESULTS, 'demo.png'), fullPage: true })

    await closePage(alice)
    await closePage(bob)
  })

  it('subscribes, unsubscribes and switches users from the page', TEST, async () => {
    const page = await openDemo(server, 1)
    await page.fill('#topic', 'sports')
    await page.click('#subscribe-form button[type="submit"]')
    await active(page, 'sports')
    // Another user's topic is refused by the server.
    await page.fill('#topic', 'user:2:updates')
    await page.click('#subscribe-form button[type="submit"]')
    await page.locator('#subscriptions li[data-topic="user:2:updates"][data-status="refused"]', { hasText: 'forbidden' }).waitFor()

    await page.click('#subscriptions li[data-topic="news"] button.unsubscribe')
    await page.locator('#subscriptions li[data-topic="news"]').waitFor({ state: 'detached' })
    const dropped = marker('dropped')
    const kept = marker('kept')
    await server.api('/api/publish', { topic: 'news', payload: { n: dropped } })
    await server.api('/api/publish', { topic: 'sports', payload: { n: kept } })
    await logged(page, 'DATA', 'sports', kept).waitFor()
    assert.equal(await page.locator('#log li', { hasText: dropped }).count(), 0, 'a message of an unsubscribed topic arrived')

    // Switching to bob: a new connection as user 2, user:1:updates becomes user:2:updates.
    const firstId = await page.locator('#client-id').textContent()
    await page.click('.user[data-user="2"]')
    await page.locator('#who', { hasText: 'bob (2)' }).waitFor()
    await authenticated(page)
    await active(page, 'user:2:updates')
    await active(page, 'sports')
    assert.notEqual(await page.locator('#client-id').textContent(), firstId)
    assert.match(page.url(), /\?user=2$/)
    const toBob = marker('bob')
    await server.api('/api/users/2/notify', { title: 'Hello bob', message: toBob })
    await toast(page, toBob).waitFor()
    await closePage(page)
  })

  it('shows the recovery of messages missed while disconnected (--history)', TEST, async () => {
    const srv = await startServer({ args: ['--history', 'news', '--history-size', '4'] })
    try {
      const page = await openDemo(srv, 1)
      await page.bringToFront()
      const before = marker('before')
      await srv.api('/api/publish', { topic: 'news', payload: { n: before } })
      await logged(page, 'DATA', 'news', before).waitFor()

      await page.click('#disconnect')
      await page.locator('#state[data-state="disconnected"]').waitFor()
      const missed = [marker('missed'), marker('missed'), marker('missed')]
      for (const n of missed) await srv.api('/api/publish', { topic: 'news', payload: { n } })
      await page.click('#connect')
      const line = page.locator('#log li.recovery[data-topic="news"][data-recovered="true"]')
      await line.waitFor()
      assert.equal(await line.locator('.text').textContent(), 'Recovered 3 missed messages on news.')
      await logged(page, 'DATA', 'news', missed[2]).waitFor()
      // The log shows the newest first: the missed ones arrived in order, after "before".
      const shown = await page.locator('#log li.message[data-topic="news"] code').allTextContents()
      assert.deepEqual(shown.map((t) => JSON.parse(t).n), [...missed].reverse().concat(before))

      // More missed than the history keeps: the page says it could not recover.
      await page.click('#disconnect')
      await page.locator('#state[data-state="disconnected"]').waitFor()
      for (let i = 0; i < 6; i++) await srv.api('/api/publish', { topic: 'news', payload: { n: marker('lost') } })
      await page.click('#connect')
      await page.locator('#log li.recovery[data-topic="news"][data-recovered="false"]', { hasText: 'Could not recover news' }).waitFor()
      await closePage(page)
    } finally {
      await srv.stop()
    }
  })

  it('recovers by itself when the server is killed and restarted', TEST, async () => {
    let srv = await startServer()
    try {
      const page = await openDemo(srv, 1)
      const before = marker('before')
      await srv.api('/api/publish', { topic: 'news', payload: { n: before } })
      await logged(page, 'DATA', 'news', before).waitFor()
      const firstId = await page.locator('#client-id').textContent()

      await srv.stop('SIGKILL')
      await page.locator('#state:not([data-state="authenticated"])').waitFor()
      await page.locator('#subscriptions li[data-topic="news"][data-status="pending"]').waitFor()
      await page.locator('#log li.system', { hasText: 'reconnecting' }).first().waitFor()
      await page.waitForTimeout(500) // a failed attempt or two while the server is down

      srv = await startServer({ port: srv.port })
      await authenticated(page)
      await active(page, 'news') // the client subscribed again by itself
      assert.notEqual(await page.locator('#client-id').textContent(), firstId)

      const afterRestart = marker('after-restart')
      await srv.api('/api/publish', { topic: 'news', payload: { n: afterRestart } })
      await logged(page, 'DATA', 'news', afterRestart).waitFor()
      const mine = marker('mine')
      await srv.api('/api/users/1/notify', { title: 'Back online', message: mine, level: 'success' })
      await toast(page, mine).waitFor()
      await closePage(page)
    } finally {
      await srv.stop()
    }
  })
}
