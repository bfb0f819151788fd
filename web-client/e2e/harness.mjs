// Shared parts of the browser end-to-end tests (call.test.mjs, consultations.test.mjs) and the
// measurement script (measure-call.mjs): start and stop the real Vizit server, mint tokens, create
// staff accounts, launch Debian's Chromium with a fake camera and microphone, page helpers (and
// checkPage: screenshot, axe-core, no sideways scrolling, in VIEWPORTS), and
// the diagnostics printed on failure.
//
// Not a test file: `node --test e2e/` only runs names like *.test.mjs, *-test.mjs, test-*.mjs.
// The server binary: $VIZIT_BIN, else ../target/debug/vizit (relative to web-client/).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const WEB_CLIENT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = process.env.VIZIT_BIN
  ? resolve(process.env.VIZIT_BIN)
  : join(WEB_CLIENT, '..', 'target', 'debug', 'vizit');
export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

const execFileP = promisify(execFile);

// ---- diagnostics ---------------------------------------------------------------------------

/** Last lines of the server's stderr and of every page's console, printed when a test fails. */
export const serverLog = [];
export const consoleLog = [];

export function remember(list, line, max) {
  list.push(line);
  if (list.length > max) list.splice(0, list.length - max);
}

/** Print the tails of the server's output and the pages' consoles (to stdout unless told). */
export function dumpDiagnostics(print = console.log) {
  print('---- server stderr (tail) ----');
  print(serverLog.join('\n') || '(empty)');
  print('---- browser console (tail) ----');
  print(consoleLog.join('\n') || '(empty)');
}

/** Wrap a test body so that a failure prints what the server and the pages said. */
export function withDiagnostics(fn, { needs } = {}) {
  return async (t) => {
    // A test that builds on an earlier one fails fast, without repeating the same dump.
    if (needs) assert.ok(needs(), 'an earlier test failed to set up the call this one needs');
    try {
      await fn(t);
    } catch (e) {
      dumpDiagnostics();
      throw e;
    }
  };
}

// ---- the server ----------------------------------------------------------------------------

/**
 * The server's environment: this process's environment without any `VIZIT_*` variable (the
 * server rejects unknown `VIZIT_` keys, and matches the prefix case-insensitively, so e.g.
 * `VIZIT_BIN` would stop it from starting), plus the settings of a throwaway test server.
 */
export function serverEnv(dataDir, secret) {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('VIZIT_')),
  );
  return {
    ...inherited,
    VIZIT_HTTP__LISTEN: '127.0.0.1:0',
    VIZIT_MEDIA__UDP_BIND: '127.0.0.1:0',
    VIZIT_DATA_DIR: dataDir,
    VIZIT_AUTH__TOKEN_SECRET: secret,
    VIZIT_DEMO: 'true',
    VIZIT_LOG__FILTER: 'info',
    // Patients go straight into calls here; waiting.test.mjs turns the waiting room on.
    VIZIT_SIGNALING__WAITING_ROOM: 'false',
  };
}

/**
 * Start `vizit serve`; `url` resolves with the base URL it prints on stdout, `mediaPort` with
 * the SFU's UDP port (the line after it).
 */
export function startServer(env) {
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  createInterface({ input: child.stderr }).on('line', (line) => remember(serverLog, line, 200));
  let gotMediaPort;
  const mediaPort = new Promise((r) => (gotMediaPort = r));
  let gotTcpPort;
  const tcpPort = new Promise((r) => (gotTcpPort = r));
  const url = new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('the server printed no "Vizit is listening on" line in 30 s')), 30_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      remember(serverLog, `[stdout] ${line}`, 200);
      const m = /^Vizit is listening on (http:\/\/\S+?)\/?$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
      const media = /^Media \(UDP\) on [\d.]+:(\d+)/.exec(line.trim());
      if (media) gotMediaPort(Number(media[1]));
      const tcp = /^ICE-TCP on [\d.]+:(\d+)/.exec(line.trim());
      if (tcp) gotTcpPort(Number(tcp[1]));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited before listening (code ${code}, signal ${signal})`));
    });
  });
  return { child, url, mediaPort, tcpPort };
}

/** SIGTERM, then SIGKILL after 15 s; resolves once the server has exited. */
export async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A throwaway server: a fresh data folder and token secret, listening on a free loopback port;
 * `extraEnv` adds settings (`VIZIT_…` variables).
 * Returns `{ env, base, mediaPort, tcpPort, child, dataDir, stop }`; `stop()` stops it and removes the
 * folder. If it does not come up, it is cleaned up before the error is thrown.
 */
export async function startVizit(extraEnv = {}) {
  assert.ok(existsSync(BIN), `no server binary at ${BIN}: build it (cargo build) or set VIZIT_BIN`);
  const dataDir = await mkdtemp(join(tmpdir(), 'vizit-e2e-'));
  const env = { ...serverEnv(dataDir, randomBytes(32).toString('hex')), ...extraEnv };
  const { child, url, mediaPort, tcpPort } = startServer(env);
  const stop = async () => {
    await stopServer(child);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const base = await url;
    const port = await Promise.race([mediaPort, new Promise((r) => setTimeout(() => r(null), 5_000))]);
    assert.ok(port, 'the server printed no "Media (UDP) on" line');
    // The ICE-TCP line follows the media one at once (none with media.tcp off).
    const tcp = await Promise.race([tcpPort, new Promise((r) => setTimeout(() => r(null), 1_000))]);
    return { env, base, mediaPort: port, tcpPort: tcp, child, dataDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A join token from `vizit token` (same environment as the server, so the same secret). */
export async function makeToken(env, room, name, role) {
  const { stdout } = await execFileP(BIN, ['token', '--room', room, '--name', name, '--role', role], { env });
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `vizit token printed no JWT: ${JSON.stringify(stdout)}`);
  return token;
}

/**
 * Create a staff account with `vizit user create` (same environment as the server, so the same
 * data folder and database). The password goes in on standard input, as the CLI wants it.
 * Resolves with the new user's id (the CLI prints it).
 */
export function createStaff(env, { role, email, name, specialty, timeZone }, password) {
  const args = ['user', 'create', '--role', role, '--email', email, '--name', name];
  if (specialty !== undefined) args.push('--specialty', specialty);
  if (timeZone !== undefined) args.push('--time-zone', timeZone);
  return new Promise((resolveId, reject) => {
    const child = spawn(BIN, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const id = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && /^[0-9a-f-]{36}$/.test(id)) resolveId(id);
      else reject(new Error(`vizit user create ${role} exited with ${code ?? signal}: ${stderr.trim() || stdout.trim()}`));
    });
    child.stdin.end(`${password}\n`);
  });
}

/** A fresh room name. */
export const newRoom = () => `e2e-${randomBytes(6).toString('hex')}`;

// ---- the REST API from Node ------------------------------------------------------------------

/**
 * Call `/api/v1{path}` and check the status. Resolves with the parsed JSON body (null for an
 * empty one). Failure messages carry the answer, never the token sent.
 */
export async function api(base, method, path, { token, body, status } = {}) {
  const headers = { Accept: 'application/json' };
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (status !== undefined) {
    assert.equal(res.status, status, `${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
  }
  return text === '' ? null : JSON.parse(text);
}

// ---- the browser and pages -----------------------------------------------------------------

/**
 * Debian's Chromium, headless, with a fake camera and microphone that need no permission prompt.
 * `options` go to playwright's `chromium.launch` (e.g. `handleSIGINT: false` for a script that
 * cleans up on Ctrl-C itself: playwright's own handler exits the process at once).
 */
export function launchBrowser(options = {}) {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, ...options });
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/**
 * A page of its own context at `kind`'s size (VIEWPORTS) in Russian, its console kept for the
 * diagnostics under `label`. bypassCSP: axe-core is injected as a script; `extra` adds context
 * options (e.g. camera and microphone permissions for a call in the same tab).
 */
export async function openPortalPage(browser, label, kind, extra = {}) {
  const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true, locale: 'ru-RU', ...extra });
  const page = await context.newPage();
  page.on('console', (m) => remember(consoleLog, `[${label}] ${m.type()}: ${m.text()}`, 300));
  page.on('pageerror', (e) => remember(consoleLog, `[${label}] pageerror: ${e.message}`, 300));
  return page;
}

/** A member of staff signs in with the form on /consultations. */
export async function staffLogin(page, base, email, password) {
  await page.goto(`${base}/consultations`);
  await byTestId(page, 'login-email').fill(email);
  await byTestId(page, 'login-password').fill(password);
  await byTestId(page, 'login-submit').click();
  await byTestId(page, 'list-title').waitFor({ state: 'visible', timeout: 15_000 });
}

/** Pick a doctor in the booking's cards: by `id`, or the first whose card shows `name`, or the first. */
export async function chooseDoctor(page, { id, name } = {}) {
  const cards = page.locator('[data-testid="doctor"]');
  const card = (id ? page.locator(`[data-testid="doctor"][data-doctor-id="${id}"]`) : name ? cards.filter({ hasText: name }) : cards).first();
  await card.waitFor({ state: 'visible', timeout: 30_000 });
  await card.click();
  return card.getAttribute('data-doctor-id');
}

/** Hang up as a person does: the hang-up button, then «Завершить» in its confirmation. */
export async function hangUp(page) {
  await byTestId(page, 'hangup').click();
  await byTestId(page, 'hangup-yes').click();
}

export async function waitState(page, state, timeout = 30_000) {
  await page.locator(`[data-testid="connection-state"][data-state="${state}"]`).waitFor({ state: 'visible', timeout });
}

/**
 * Poll `probe` until it returns a truthy value; returns that value. `what` names the wait in the
 * timeout error; a function is called then, so it can report the last thing it saw.
 */
export async function until(what, probe, timeout = 30_000, interval = 50) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * Open the call page for `token` in a new browser context and wait until Join is enabled (the
 * camera and microphone have been asked for). `denyMedia`: as if the user blocked them; `init`: a
 * function run in the page before its scripts; `context`: more options of the browser context (a
 * viewport, `bypassCSP` for {@link checkPage}).
 * The page's console goes to the diagnostics, prefixed with `label`.
 */
export async function openCallPage(browser, base, label, token, { denyMedia = false, init = null, context: extra = {} } = {}) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], ...extra });
  // A script run in the page before its own (to make the browser behave like another one).
  if (init !== null) await context.addInitScript(init);
  if (denyMedia) {
    // As if the user had clicked "Block" in the permission prompt.
    await context.addInitScript(() => {
      MediaDevices.prototype.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
    });
  }
  const page = await context.newPage();
  page.on('console', (m) => remember(consoleLog, `[${label}] ${m.type()}: ${m.text()}`, 300));
  page.on('pageerror', (e) => remember(consoleLog, `[${label}] pageerror: ${e.message}`, 300));
  await page.goto(`${base}/call#token=${encodeURIComponent(token)}`);
  // The token leaves the address bar (and so the history) at once.
  await until(`${label}: token out of the address bar`, async () => !page.url().includes('token'), 5_000);
  // The preview is ready (media asked for) once Join is enabled.
  await byTestId(page, 'join').waitFor({ state: 'visible', timeout: 20_000 });
  await until(`${label}: Join enabled`, () => byTestId(page, 'join').isEnabled(), 20_000);
  return page;
}

// ---- in-page probes (functions passed to page.evaluate; they run in the page) ---------------

/** What the page receives, from its RTCPeerConnection's stats. Runs in the page. */
export function readReceived() {
  const video = document.querySelector('[data-testid="remote-video"]');
  const result = { framesDecoded: 0, audioPackets: 0, videoWidth: video ? video.videoWidth : 0 };
  const pc = window.vizit && window.vizit.pc();
  if (!pc) return Promise.resolve(result);
  return pc.getStats().then((stats) => {
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const kind = r.kind || r.mediaType;
      if (kind === 'video') result.framesDecoded += r.framesDecoded || 0;
      if (kind === 'audio') result.audioPackets += r.packetsReceived || 0;
    });
    return result;
  });
}

export const received = (page) => page.evaluate(readReceived);

/**
 * Per inbound kind ('audio', 'video'): packets received and lost, and what the sender's last
 * RTCP sender report said (the remote-outbound-rtp stats: packets sent, reports received, its
 * NTP time as `remoteTimestamp`), from getStats. Runs in the page.
 */
export function readSenderReports() {
  const result = {};
  const pc = window.vizit && window.vizit.pc();
  if (!pc) return Promise.resolve(result);
  return pc.getStats().then((stats) => {
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const kind = r.kind || r.mediaType;
      const remote = r.remoteId && stats.get(r.remoteId);
      result[kind] = {
        packetsReceived: r.packetsReceived || 0,
        packetsLost: r.packetsLost || 0,
        reportsSent: remote ? remote.reportsSent || 0 : 0,
        packetsSent: remote ? remote.packetsSent || 0 : 0,
        remoteTimestamp: remote ? remote.remoteTimestamp || 0 : 0,
        now: Date.now(),
      };
    });
    return result;
  });
}

/**
 * The page's inbound video, from getStats: size and frame rate of the (first) inbound video
 * stream, and bytes and frames summed over all of them. Runs in the page.
 */
export function readInboundVideo() {
  const result = { bytesReceived: 0, framesDecoded: 0, frameWidth: 0, frameHeight: 0, framesPerSecond: 0, at: Date.now() };
  const pc = window.vizit && window.vizit.pc();
  if (!pc) return Promise.resolve(result);
  return pc.getStats().then((stats) => {
    result.at = Date.now();
    let first = true;
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp' || (r.kind || r.mediaType) !== 'video') return;
      result.bytesReceived += r.bytesReceived || 0;
      result.framesDecoded += r.framesDecoded || 0;
      if (first) {
        first = false;
        result.frameWidth = r.frameWidth || 0;
        result.frameHeight = r.frameHeight || 0;
        result.framesPerSecond = r.framesPerSecond || 0;
      }
    });
    return result;
  });
}

/**
 * The page's sending side, from its getStats (run in the page): the bandwidth its congestion
 * controller estimates (`availableOutgoingBitrate` of the selected candidate pair, bit/s; it
 * rises only on the receiver's transport-wide feedback), what limits its video's quality, the
 * size it sends, and per kind what the SFU's receiver reports say (remote-inbound-rtp: round
 * trip time, packets lost, reports received).
 */
export function readOutbound() {
  const result = { availableOutgoingBitrate: 0, qualityLimitationReason: '', frameWidth: 0, frameHeight: 0, remote: {} };
  const pc = window.vizit && window.vizit.pc();
  if (!pc) return Promise.resolve(result);
  return pc.getStats().then((stats) => {
    stats.forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        result.availableOutgoingBitrate = r.availableOutgoingBitrate || 0;
      }
      if (r.type === 'outbound-rtp' && (r.kind || r.mediaType) === 'video') {
        result.qualityLimitationReason = r.qualityLimitationReason || '';
        result.frameWidth = r.frameWidth || 0;
        result.frameHeight = r.frameHeight || 0;
      }
      if (r.type === 'remote-inbound-rtp') {
        result.remote[r.kind] = {
          roundTripTime: r.roundTripTime,
          packetsLost: r.packetsLost,
          reports: r.roundTripTimeMeasurements || 0,
        };
      }
    });
    return result;
  });
}

/**
 * Resolves with the wall-clock time (Date.now(), ms) at which the page's stats first show a
 * decoded remote video frame, polling every `interval` ms for up to `timeout` ms. Runs in the
 * page: start it before the Join click, await it after.
 */
export function firstDecodedFrameAt([interval, timeout]) {
  const deadline = Date.now() + timeout;
  return new Promise((resolvePromise, reject) => {
    const tick = () => {
      const pc = window.vizit && window.vizit.pc();
      const check = pc
        ? pc.getStats().then((stats) => {
            let frames = 0;
            stats.forEach((r) => {
              if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'video') frames += r.framesDecoded || 0;
            });
            return frames > 0;
          })
        : Promise.resolve(false);
      check.then(
        (decoded) => {
          if (decoded) resolvePromise(Date.now());
          else if (Date.now() > deadline) reject(new Error(`no decoded remote video frame in ${timeout} ms`));
          else setTimeout(tick, interval);
        },
        reject,
      );
    };
    tick();
  });
}

/** True when the remote video shows no live picture any more. Runs in the page. */
export function remoteVideoCleared() {
  const video = document.querySelector('[data-testid="remote-video"]');
  const stream = video.srcObject;
  return stream === null || stream.getVideoTracks().every((t) => t.readyState === 'ended');
}

/** The local track of `kind` that the page's peer connection sends, if any. Runs in the page. */
export function senderTrackEnabled(kind) {
  const pc = window.vizit.pc();
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === kind);
  return sender ? sender.track.enabled : null;
}

// ---- the server's own numbers --------------------------------------------------------------

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU time of process `pid` (all its threads), in clock ticks. */
export async function cpuTicks(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces; utime and stime are
  // fields 14 and 15, i.e. the 12th and 13th after the closing parenthesis.
  const rest = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
  return Number(rest[11]) + Number(rest[12]);
}

/** The server's /metrics as text. */
export async function fetchMetrics(base) {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200, `GET /metrics answered ${res.status}`);
  return res.text();
}

/** The value of the unlabelled sample `name value` in Prometheus text (the total), or null. */
export function metricTotal(text, name) {
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\S+)/.exec(line);
    if (m && m[1] === name) return Number(m[2]);
  }
  return null;
}

// ---- recorded consultations (recording.test.mjs, measure-recording.mjs) ---------------------

export const WEED = join(WEB_CLIENT, '..', '.venv-test', 'bin', 'weed');
// The namespace is the caller's own: SeaweedFS's default ports are free in it.
export const S3_PORT = 8333;
const MASTER_PORT = 9333;
export const BUCKET = 'vizit-e2e';
const S3_KEY = 'e2e-access';
const S3_SECRET = 'e2e-secret-key';
/** Vizit's settings for recordings in the SeaweedFS of {@link startSeaweed}. */
export const S3_SETTINGS = {
  VIZIT_RECORDINGS__STORAGE: 's3',
  VIZIT_RECORDINGS__S3__ENDPOINT: `http://127.0.0.1:${S3_PORT}`,
  VIZIT_RECORDINGS__S3__BUCKET: BUCKET,
  VIZIT_RECORDINGS__S3__PREFIX: 'clinic-1',
  VIZIT_RECORDINGS__S3__ACCESS_KEY_ID: S3_KEY,
  VIZIT_RECORDINGS__S3__SECRET_ACCESS_KEY: S3_SECRET,
};

/** SeaweedFS in this namespace; resolves once its S3 port answers and the bucket exists. */
export async function startSeaweed(dir) {
  const child = spawn(
    WEED,
    [
      'mini',
      `-dir=${dir}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-s3.port=${S3_PORT}`,
      '-webdav=false',
      '-admin.ui=false',
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      '-master.telemetry=false',
      '-master.volumeSizeLimitMB=32',
    ],
    {
      env: { ...process.env, AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  child.stderr.setEncoding('utf8').on('data', (d) => remember(serverLog, `[weed] ${d.trim().slice(0, 300)}`, 200));
  await until(
    'SeaweedFS S3 answering',
    async () => {
      if (child.exitCode !== null) throw new Error(`SeaweedFS exited with ${child.exitCode}`);
      return fetch(`http://127.0.0.1:${S3_PORT}/`).then(
        () => true,
        () => false,
      );
    },
    60_000,
    250,
  );
  await until(
    'the bucket created',
    async () => {
      const shell = spawn(WEED, ['shell', `-master=127.0.0.1:${MASTER_PORT}`], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      shell.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      shell.stdin.end(`s3.bucket.create -name ${BUCKET}\n`);
      await new Promise((r) => shell.once('exit', r));
      return /created bucket|already exist/i.test(out);
    },
    30_000,
    500,
  );
  return child;
}


/** Stop what {@link startSeaweed} started (SIGTERM, bounded wait). */
export async function stopSeaweed(child) {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
}

export const CLINIC_ADMIN = { role: 'admin', email: 'admin@clinic.test', name: 'Админ' };
export const CLINIC_DOCTOR = { role: 'doctor', email: 'doctor@clinic.test', name: 'Доктор Смирнова', specialty: 'Терапевт' };
export const CLINIC_PASSWORD = 'recording-password-1';

/** An admin and a doctor, created with the CLI; resolves with the doctor's id. */
export async function createClinic(env) {
  await createStaff(env, CLINIC_ADMIN, CLINIC_PASSWORD);
  return createStaff(env, CLINIC_DOCTOR, CLINIC_PASSWORD);
}

/** A session token of {@link createClinic}'s `who` (the admin unless said), by the password login. */
export async function clinicToken(base, who = CLINIC_ADMIN) {
  const { token } = await api(base, 'POST', '/auth/login', {
    body: { email: who.email, password: CLINIC_PASSWORD },
    status: 200,
  });
  return token;
}

/**
 * A paid consultation with {@link createClinic}'s doctor whose call is open (its slot starts in
 * two minutes), through the REST API as the portal does it. Resolves with the admin's, the
 * patient's and the doctor's session tokens and the consultation's id.
 */
export async function paidConsultation(base, doctorId) {
  const adminToken = await clinicToken(base);
  const { key } = await api(base, 'POST', '/api-keys', { token: adminToken, body: { name: 'portal' }, status: 201 });
  const { id: patientId } = await api(base, 'POST', '/patients', {
    token: key,
    body: { name: 'Пациент Записи' },
    status: 201,
  });
  const start = Math.ceil((Date.now() + 2 * 60_000) / 1000) * 1000;
  const { id: slotId } = await api(base, 'POST', `/doctors/${doctorId}/slots`, {
    token: key,
    body: {
      startsAt: new Date(start).toISOString(),
      endsAt: new Date(start + 30 * 60_000).toISOString(),
      priceKopecks: 150000,
    },
    status: 201,
  });
  const { id: consultationId } = await api(base, 'POST', '/consultations', {
    token: key,
    body: { slotId, patientId },
    status: 201,
  });
  await api(base, 'POST', `/consultations/${consultationId}/payment`, { token: key, status: 200 });
  const { token: patientSession } = await api(base, 'POST', `/patients/${patientId}/sessions`, {
    token: key,
    status: 201,
  });
  const doctorSession = await clinicToken(base, CLINIC_DOCTOR);
  return { adminToken, consultationId, patientSession, doctorSession };
}

/** Click Join on both call pages and wait until each decodes the other's video. */
export async function joinBoth(a, b) {
  await byTestId(a, 'join').click();
  await byTestId(b, 'join').click();
  await Promise.all([waitState(a, 'connected'), waitState(b, 'connected')]);
  await until("both decode the other's video", async () => {
    const [x, y] = await Promise.all([received(a), received(b)]);
    return x.framesDecoded > 0 && y.framesDecoded > 0;
  });
}

/** The consultation's recordings, as an admin sees them. */
export async function recordingsOf(base, adminToken, consultationId) {
  const list = await api(base, 'GET', `/recordings?consultationId=${consultationId}`, { token: adminToken, status: 200 });
  return list.items;
}

/** gst-discoverer-1.0's report of a file. */
export async function discover(path) {
  const { stdout } = await execFileP('gst-discoverer-1.0', [path]);
  return stdout;
}

/** Seconds of a gst-discoverer report's `Duration: H:MM:SS.n` line. */
export function seconds(report) {
  const m = /Duration:\s*(\d+):(\d+):([\d.]+)/.exec(report);
  assert.ok(m, `no duration in:\n${report}`);
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

// ---- pages as people see them ----------------------------------------------------------------

/** The two viewports pages are checked in: a desktop, and a phone. */
export const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 900 } },
  // The narrowest phones in use (360 px); every page must work there.
  phone: { viewport: { width: 360, height: 780 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
};

/**
 * Apply an nftables script: the browser tests run as root in their own network namespace, so
 * they may drop traffic between the pages and the server (a cut link, a network without UDP).
 */
export function nft(script) {
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', rejectRun);
    child.on('exit', (code) => (code === 0 ? resolveRun() : rejectRun(new Error(`nft failed: ${err}`))));
    child.stdin.end(script);
  });
}

/** Where the screenshots go (to be looked at). */
export const SCREENS = join(WEB_CLIENT, '..', 'target', 'e2e-screens');

let axeSource = null;

/**
 * Photograph the whole page into SCREENS/`name`.png, and fail on serious or critical axe-core
 * violations, on an id used twice and on sideways scrolling. The context needs `bypassCSP` (axe is injected).
 */
export async function checkPage(page, name) {
  await mkdir(SCREENS, { recursive: true });
  await page.screenshot({ path: join(SCREENS, `${name}.png`), fullPage: true });
  axeSource ??= await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility of ${name}`);
  // axe only asks a person to review a doubled id; a label that points at an id then names the
  // wrong element (the first one), so a doubled id fails here.
  const doubled = await page.evaluate(() => {
    const seen = new Set();
    const twice = new Set();
    for (const el of document.querySelectorAll('[id]')) (seen.has(el.id) ? twice : seen).add(el.id);
    return [...twice];
  });
  assert.deepEqual(doubled, [], `ids used twice on ${name}`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, `${name} scrolls sideways`);
}
