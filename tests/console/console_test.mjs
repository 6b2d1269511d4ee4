// Drives the web console in headless Chromium (Debian's, through npm playwright-core):
// enters the key, runs a Python program, runs a 3-item batch, watches a session appear,
// and fails on any console error or Content-Security-Policy violation.
// Env: CONSOLE_URL (the gateway), CODEBEAKER_API_KEY, CHROMIUM (its path), SCREENSHOT.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const base = process.env.CONSOLE_URL;
const key = process.env.CODEBEAKER_API_KEY;
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});
let session = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push('HTTP ' + r.status() + ' ' + r.url()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // Violations are also reported as events: collect them from the page itself.
  await page.exposeFunction('reportViolation', (v) => problems.push('CSP violation: ' + v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));
  });

  const response = await page.goto(base + '/console');
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  assert.equal(await page.getAttribute('#openapi-link', 'href'), '/openapi.json');

  // The key: kept in session storage only.
  await page.fill('#api-key', key);
  await page.click('#key-save');
  await page.waitForSelector('#key-status.ok');
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem('codebeaker.apiKey'),
    local: localStorage.length,
    cookies: document.cookie,
  }));
  assert.deepEqual(stored, { session: key, local: 0, cookies: '' });

  // One Python program, typed into the editor (Tab indents instead of leaving it).
  await page.selectOption('#language', 'python');
  await page.fill('#code', '');
  await page.click('#code');
  await page.keyboard.type('xs = input_data["xs"]\nfor x in xs:\n');
  await page.keyboard.press('Tab');
  await page.keyboard.type('print("item", x)\nresult = {"sum": sum(xs), "html": "<b>bold</b>"}\n');
  assert.match(await page.inputValue('#code'), /\n {4}print\("item", x\)\n/);
  await page.fill('#input', '{"xs": [1, 2, 3]}');
  await page.click('#run');
  await page.waitForFunction(() => document.getElementById('run-status').dataset.state === 'done');
  const status = await page.textContent('#run-status');
  const output = JSON.parse(await page.textContent('#res-output'));
  assert.deepEqual(output, { sum: 6, html: '<b>bold</b>' }, 'status: ' + status);
  assert.equal(await page.textContent('#res-stdout'), 'item 1\nitem 2\nitem 3\n');
  assert.equal(await page.textContent('#res-success'), 'true');
  assert.equal(await page.textContent('#res-error'), '—');
  assert.equal(await page.textContent('#res-exit'), '0');
  assert.match(await page.textContent('#res-timing'), /^run \d+ ms.*round trip \d+ ms$/);
  // The program's output is text, never markup.
  assert.equal(await page.locator('#result b').count(), 0);

  // A 3-item batch, streamed: the progress ends at 3/3.
  await page.fill('#batch-inputs', '{"xs": [1]}\n{"xs": [2, 3]}\n{"xs": [4, 5, 6]}\n');
  await page.click('#batch-run');
  await page.waitForFunction(() => document.getElementById('batch-count').dataset.state === 'done');
  assert.equal(await page.textContent('#batch-count'), '3/3', await page.textContent('#batch-summary'));
  assert.deepEqual(await page.evaluate(() => {
    const p = document.getElementById('batch-progress');
    return [p.value, p.max];
  }), [3, 3]);
  assert.match(await page.textContent('#batch-summary'), /^3 ok, 0 failed, 0 skipped/);
  const cells = await page.locator('#batch-rows tr td:nth-child(3)').allTextContents();
  assert.deepEqual(cells.map((c) => JSON.parse(c).sum), [1, 5, 15]);

  // The watch panel: the Python pool's counts, and a session opened elsewhere appears.
  await page.waitForSelector('#pools-rows tr');
  const pool = await page.locator('#pools-rows tr').first().locator('td').allTextContents();
  assert.equal(pool[0], 'python');
  assert.match(pool[2], /^\d+$/);
  assert.match(pool[3], /^\d+$/);
  const created = await fetch(base + '/v1/sessions', {
    method: 'POST',
    headers: { 'x-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify({ language: 'python' }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  session = (await created.json()).sessionId;
  await page.waitForFunction((id) => document.getElementById('sessions-rows').textContent.includes(id), session);
  assert.equal(await page.textContent('#sessions-count'), '1');

  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  assert.deepEqual(problems, [], 'no console errors or CSP violations');
  console.log('console test passed; screenshot at ' + process.env.SCREENSHOT);
} finally {
  if (session) {
    await fetch(base + '/v1/sessions/' + session, { method: 'DELETE', headers: { 'x-api-key': key } });
  }
  await browser.close();
}
