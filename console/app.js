// The CodeBeaker console: plain JS, no build step, no dependencies. It holds no authority
// of its own: every call is one of the documented /v1 routes, sent with the key the user
// pasted (kept in sessionStorage, so it dies with the tab). Everything the gateway answers
// is written with textContent, never parsed as HTML.
'use strict';

(function () {
  const KEY_STORAGE = 'codebeaker.apiKey';
  const WATCH_EVERY_MS = 3000;
  const SAMPLES = {
    python: 'xs = input_data.get("xs", [1, 2, 3])\nprint("summing", len(xs), "numbers")\nresult = {"sum": sum(xs)}\n',
    javascript: 'const xs = input_data.xs || [1, 2, 3];\nconsole.log("summing", xs.length, "numbers");\nconst result = {sum: xs.reduce((a, b) => a + b, 0)};\n',
  };

  const $ = (id) => document.getElementById(id);
  let languages = [];

  // ---- the key ----------------------------------------------------------------------

  function key() {
    return sessionStorage.getItem(KEY_STORAGE) || '';
  }

  function setStatus(el, text, cls) {
    el.textContent = text;
    el.classList.remove('ok', 'bad');
    if (cls) el.classList.add(cls);
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ 'x-api-key': key() }, opts.headers || {});
    // Same origin only (the CSP's connect-src says so too); no cookies are involved.
    opts.credentials = 'omit';
    return fetch(path, opts);
  }

  // The gateway's error shape is {"error": {"kind", "message"}}.
  async function errorOf(res) {
    let text = '';
    try {
      text = await res.text();
      const body = JSON.parse(text);
      if (body && body.error) return res.status + ' ' + body.error.kind + ': ' + body.error.message;
    } catch (_) { /* not JSON: show the text */ }
    return res.status + ' ' + (text || res.statusText);
  }

  // ---- languages and pools ------------------------------------------------------------

  async function loadLanguages() {
    const status = $('key-status');
    if (!key()) {
      setStatus(status, 'no key', 'bad');
      return false;
    }
    let res;
    try {
      res = await api('/v1/languages');
    } catch (e) {
      setStatus(status, 'gateway unreachable: ' + e.message, 'bad');
      return false;
    }
    if (!res.ok) {
      setStatus(status, await errorOf(res), 'bad');
      return false;
    }
    languages = await res.json();
    setStatus(status, 'key accepted: ' + languages.length + ' languages', 'ok');
    fillLanguages();
    renderPools();
    return true;
  }

  function fillLanguages() {
    const select = $('language');
    const current = select.value;
    select.replaceChildren();
    for (const l of languages) {
      const o = document.createElement('option');
      o.value = l.name;
      o.textContent = l.title + (l.available ? '' : ' (image not built)');
      o.disabled = !l.available;
      select.appendChild(o);
    }
    const names = languages.map((l) => l.name);
    select.value = names.includes(current) ? current : (names.includes('python') ? 'python' : names[0] || '');
    sampleFor(select.value);
  }

  // A sample only replaces an empty editor or another language's untouched sample.
  function sampleFor(language) {
    const code = $('code');
    const untouched = code.value.trim() === '' || Object.values(SAMPLES).includes(code.value);
    if (untouched) code.value = SAMPLES[language] || '';
  }

  function renderPools() {
    const rows = [];
    for (const l of languages) {
      rows.push(l.pool);
      for (const v of l.variants || []) if (v.pool) rows.push(v.pool);
    }
    const body = $('pools-rows');
    body.replaceChildren();
    for (const p of rows) {
      body.appendChild(row([p.name, p.available ? 'yes' : 'no', p.idle, p.busy, p.warming, p.maxSize]));
    }
  }

  function row(cells) {
    const tr = document.createElement('tr');
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = String(c);
      tr.appendChild(td);
    }
    return tr;
  }

  // ---- one execution ------------------------------------------------------------------

  function parseJson(text, what) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(what + ' is not JSON: ' + e.message);
    }
  }

  function pretty(v) {
    return v === null || v === undefined ? 'null' : JSON.stringify(v, null, 2);
  }

  async function run() {
    const status = $('run-status');
    status.dataset.state = 'running';
    setStatus(status, 'running…');
    const body = { language: $('language').value, code: $('code').value, mode: $('mode').value };
    const timeout = $('timeout').value;
    if (timeout) body.timeoutMs = Number(timeout);
    try {
      if (body.mode === 'edge') body.input = parseJson($('input').value || '{}', 'the input');
      const started = performance.now();
      const res = await api('/v1/execute', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const roundTrip = Math.round(performance.now() - started);
      if (!res.ok) throw new Error(await errorOf(res));
      const r = await res.json();
      showResult(r, roundTrip);
      setStatus(status, r.success ? 'done' : 'done (the program failed)', r.success ? 'ok' : 'bad');
    } catch (e) {
      setStatus(status, e.message, 'bad');
    } finally {
      status.dataset.state = 'done';
    }
  }

  function showResult(r, roundTrip) {
    $('result').hidden = false;
    $('res-success').textContent = String(r.success);
    $('res-success').className = r.success ? 'ok' : 'bad';
    $('res-error').textContent = r.error ? r.error.kind + ': ' + r.error.message : '—';
    $('res-exit').textContent = String(r.exitCode);
    const parts = ['run ' + r.durationMs + ' ms'];
    if (r.compileMs) parts.push('compile ' + r.compileMs + ' ms');
    if (r.queueMs) parts.push('queue ' + r.queueMs + ' ms');
    if (r.cacheHit !== null && r.cacheHit !== undefined) parts.push('cache ' + (r.cacheHit ? 'hit' : 'miss'));
    parts.push('round trip ' + roundTrip + ' ms');
    $('res-timing').textContent = parts.join(' · ');
    $('res-output').textContent = pretty(r.output);
    $('res-stdout').textContent = r.stdout + (r.truncated ? '\n[truncated]' : '');
    $('res-stderr').textContent = r.stderr;
  }

  // ---- a batch, streamed as NDJSON ----------------------------------------------------

  let batchAbort = null;

  async function runBatch() {
    const count = $('batch-count');
    const progress = $('batch-progress');
    const summary = $('batch-summary');
    const rows = $('batch-rows');
    rows.replaceChildren();
    setStatus(summary, '');
    const lines = $('batch-inputs').value.split('\n').map((l) => l.trim()).filter((l) => l);
    let items;
    try {
      items = lines.map((l, i) => ({ id: String(i + 1), input: parseJson(l, 'line ' + (i + 1)) }));
    } catch (e) {
      setStatus(summary, e.message, 'bad');
      return;
    }
    if (items.length === 0) {
      setStatus(summary, 'no inputs', 'bad');
      return;
    }
    const body = { language: $('language').value, code: $('code').value, mode: $('mode').value, items: items };
    const concurrency = $('batch-concurrency').value;
    if (concurrency) body.maxConcurrency = Number(concurrency);
    const timeout = $('timeout').value;
    if (timeout) body.timeoutMs = Number(timeout);
    let done = 0;
    progress.max = items.length;
    progress.value = 0;
    count.textContent = '0/' + items.length;
    count.dataset.state = 'running';
    batchAbort = new AbortController();
    $('batch-run').disabled = true;
    $('batch-stop').disabled = false;
    const slots = items.map(() => null);
    try {
      const res = await api('/v1/execute/batch', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify(body),
        signal: batchAbort.signal,
      });
      if (!res.ok) throw new Error(await errorOf(res));
      await readLines(res.body, (msg) => {
        if (msg.type === 'item') {
          done += 1;
          progress.value = done;
          count.textContent = done + '/' + items.length;
          slots[msg.item.index] = msg.item;
          renderBatch(rows, slots);
        } else if (msg.type === 'summary') {
          const s = msg.summary;
          setStatus(summary, s.successCount + ' ok, ' + s.failureCount + ' failed, ' + s.skippedCount +
            ' skipped in ' + s.totalDurationMs + ' ms', s.failureCount ? 'bad' : 'ok');
        }
      });
    } catch (e) {
      setStatus(summary, e.name === 'AbortError' ? 'stopped' : e.message, 'bad');
    } finally {
      count.dataset.state = 'done';
      batchAbort = null;
      $('batch-run').disabled = false;
      $('batch-stop').disabled = true;
    }
  }

  // Reads a fetch body stream line by line as it arrives (one JSON object per line).
  async function readLines(stream, onMessage) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) onMessage(JSON.parse(line));
      }
      if (done) break;
    }
    if (buffered.trim()) onMessage(JSON.parse(buffered));
  }

  function renderBatch(rows, slots) {
    rows.replaceChildren();
    slots.forEach((item, i) => {
      if (!item) return;
      const shown = item.error ? item.error.kind + ': ' + item.error.message : JSON.stringify(item.output);
      const tr = row([i + 1, String(item.success), shown, item.latencyMs]);
      tr.children[1].className = item.success ? 'ok' : 'bad';
      tr.children[2].className = 'mono';
      rows.appendChild(tr);
    });
  }

  // ---- watching pools and sessions ----------------------------------------------------

  async function watch() {
    if (!key() || document.hidden) return;
    const status = $('watch-status');
    try {
      const [langs, sessions] = await Promise.all([api('/v1/languages'), api('/v1/sessions')]);
      if (langs.ok) {
        languages = await langs.json();
        renderPools();
      }
      const body = $('sessions-rows');
      body.replaceChildren();
      if (sessions.ok) {
        const s = await sessions.json();
        $('sessions-count').textContent = String(s.count);
        for (const x of s.sessions) {
          const tr = row([x.sessionId, x.language, x.state, x.executionCount, x.idleMinutes]);
          tr.children[0].className = 'mono';
          body.appendChild(tr);
        }
      } else {
        $('sessions-count').textContent = '?';
        body.appendChild(row([await errorOf(sessions), '', '', '', '']));
      }
      setStatus(status, 'updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus(status, 'not updated: ' + e.message, 'bad');
    }
  }

  // ---- the editor ---------------------------------------------------------------------

  // Tab indents (four spaces) instead of leaving the field; Escape then Tab leaves it, so
  // keyboard users are never trapped. Ctrl/Cmd+Enter runs.
  function editorKeys(el) {
    let escaped = false;
    el.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { escaped = true; return; }
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); return; }
      if (e.key !== 'Tab' || escaped) { escaped = false; return; }
      e.preventDefault();
      const { selectionStart: s, selectionEnd: end, value } = el;
      if (e.shiftKey) {
        const lineStart = value.lastIndexOf('\n', s - 1) + 1;
        const strip = value.slice(lineStart, lineStart + 4).match(/^ {0,4}/)[0].length;
        el.value = value.slice(0, lineStart) + value.slice(lineStart + strip);
        el.selectionStart = el.selectionEnd = Math.max(lineStart, s - strip);
      } else {
        el.value = value.slice(0, s) + '    ' + value.slice(end);
        el.selectionStart = el.selectionEnd = s + 4;
      }
    });
  }

  // ---- wiring -------------------------------------------------------------------------

  function init() {
    $('api-key').value = key();
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, $('api-key').value.trim());
      loadLanguages().then(watch);
    });
    $('key-forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORAGE);
      $('api-key').value = '';
      setStatus($('key-status'), 'forgotten');
    });
    $('language').addEventListener('change', () => sampleFor($('language').value));
    $('run').addEventListener('click', run);
    $('batch-run').addEventListener('click', runBatch);
    $('batch-stop').addEventListener('click', () => batchAbort && batchAbort.abort());
    editorKeys($('code'));
    $('batch-inputs').value = '{"xs": [1, 2]}\n{"xs": [3, 4]}\n{"xs": [5, 6]}';
    if (key()) loadLanguages().then(watch);
    setInterval(watch, WATCH_EVERY_MS);
  }

  document.addEventListener('DOMContentLoaded', init);
})();
