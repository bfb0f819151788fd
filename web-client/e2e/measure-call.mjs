// Measures one two-person call through the real Vizit server: a standalone script, not a test.
//
//   node e2e/measure-call.mjs [seconds]        (default 30; npm run measure:call -- [seconds])
//
// Like the e2e test, run it in a network namespace that has only loopback, as root:
//   unshare -n bash -c 'ip link set lo up; cd web-client && node e2e/measure-call.mjs 20'
// The server binary: $VIZIT_BIN, else ../target/debug/vizit (a debug build is much slower than a
// release build; say which one you measured).
//
// Starts the server, opens a doctor and a patient page in Chromium (fake camera and microphone),
// joins both, waits until both decode remote video, then over `seconds` reads:
// - the server process's CPU time (utime + stime from /proc/<pid>/stat, all threads);
// - the server's /metrics totals (the unlabelled vizit_packets_{in,out}_total, vizit_bytes_*);
// - each page's inbound video from getStats (size and frame rate at the end, average bitrate);
// - each page's sending side at the end: its bandwidth estimate, what limits its video, and
//   what the SFU's receiver reports told it.
// VIZIT_MEDIA__* variables of the environment go to the server (other VIZIT_ ones do not).
// Also the time from the patient's Join click to the first decoded remote frame on each page.
// Prints a Markdown table on stdout; progress and failure diagnostics go to stderr.

import { performance } from 'node:perf_hooks';
import {
  BIN,
  CLOCK_TICKS_PER_SECOND,
  byTestId,
  cpuTicks,
  dumpDiagnostics,
  fetchMetrics,
  firstDecodedFrameAt,
  launchBrowser,
  makeToken,
  metricTotal,
  newRoom,
  openCallPage,
  readInboundVideo,
  readOutbound,
  startVizit,
  waitState,
} from './harness.mjs';

const DOCTOR = 'Доктор Иванова';
const PATIENT = 'Пациент Петров';
const FIRST_FRAME_POLL_MS = 10;
const FIRST_FRAME_TIMEOUT_MS = 45_000;

const arg = process.argv[2];
const seconds = arg === undefined ? 30 : Number(arg);
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(`usage: node e2e/measure-call.mjs [seconds]   (a positive number, default 30; got ${JSON.stringify(arg)})`);
  process.exit(2);
}

const progress = (msg) => console.error(`measure-call: ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let vizit; // startVizit()
let browser;
let cleaning = null;

function cleanup() {
  cleaning ??= (async () => {
    await browser?.close().catch(() => {});
    await vizit?.stop().catch(() => {});
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    progress(`${signal}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

/** Everything read at one end of the window, taken as close together as possible. */
async function snapshot(pages) {
  const [ticks, metrics, ...videos] = await Promise.all([
    cpuTicks(vizit.child.pid),
    fetchMetrics(vizit.base),
    ...pages.map((p) => p.evaluate(readInboundVideo)),
  ]);
  const at = performance.now();
  const total = (name) => {
    const v = metricTotal(metrics, name);
    if (v === null) throw new Error(`no unlabelled ${name} in /metrics:\n${metrics.slice(0, 2000)}`);
    return v;
  };
  return {
    at,
    ticks,
    packetsIn: total('vizit_packets_in_total'),
    packetsOut: total('vizit_packets_out_total'),
    bytesIn: total('vizit_bytes_in_total'),
    bytesOut: total('vizit_bytes_out_total'),
    videos,
  };
}

async function measure() {
  progress(`server ${BIN}`);
  // The server's media settings may be set for the measurement (VIZIT_MEDIA__FAST_RECEIVING=false
  // …); the harness passes no other VIZIT_ variable of this environment on.
  const media = Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('VIZIT_MEDIA__')));
  if (Object.keys(media).length > 0) progress(`server media settings: ${JSON.stringify(media)}`);
  vizit = await startVizit(media);
  // Our SIGINT/SIGTERM handler closes the browser and stops the server; playwright's would exit first.
  browser = await launchBrowser({ handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false });

  const room = newRoom();
  const [doctorToken, patientToken] = await Promise.all([
    makeToken(vizit.env, room, DOCTOR, 'doctor'),
    makeToken(vizit.env, room, PATIENT, 'patient'),
  ]);
  const [doctor, patient] = await Promise.all([
    openCallPage(browser, vizit.base, 'doctor', doctorToken),
    openCallPage(browser, vizit.base, 'patient', patientToken),
  ]);

  await byTestId(doctor, 'join').click();
  await waitState(doctor, 'connected');
  await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 10_000 });

  // Both pages watch their stats for the first decoded remote frame from before the click on.
  const probe = [FIRST_FRAME_POLL_MS, FIRST_FRAME_TIMEOUT_MS];
  const firstFrames = Promise.all([doctor.evaluate(firstDecodedFrameAt, probe), patient.evaluate(firstDecodedFrameAt, probe)]);
  firstFrames.catch(() => {}); // awaited below; avoid an unhandled rejection while the click runs
  const joinedAt = Date.now();
  await byTestId(patient, 'join').click();
  const [doctorFirst, patientFirst] = await firstFrames;
  await Promise.all([waitState(doctor, 'connected'), waitState(patient, 'connected')]);
  progress(`both pages decode remote video; measuring ${seconds} s`);

  const pages = [doctor, patient];
  const start = await snapshot(pages);
  await sleep(seconds * 1000);
  const end = await snapshot(pages);
  const outbound = await Promise.all(pages.map((p) => p.evaluate(readOutbound)));
  if (vizit.child.exitCode !== null || vizit.child.signalCode !== null) throw new Error('the server exited during the measurement');

  const elapsed = (end.at - start.at) / 1000;
  const cpuSeconds = (end.ticks - start.ticks) / CLOCK_TICKS_PER_SECOND;
  const rate = (key) => (end[key] - start[key]) / elapsed;
  const video = (i) => {
    const a = start.videos[i];
    const b = end.videos[i];
    const kbps = b.at > a.at ? ((b.bytesReceived - a.bytesReceived) * 8) / (b.at - a.at) : 0; // bits per ms = kbit/s
    const fps = b.at > a.at ? ((b.framesDecoded - a.framesDecoded) * 1000) / (b.at - a.at) : 0;
    return (
      `${b.frameWidth}×${b.frameHeight} @ ${fmt(b.framesPerSecond, 0)} fps ` +
      `(decoded ${fmt(fps, 1)} fps avg), ${fmt(kbps, 0)} kbit/s avg`
    );
  };

  const rows = [
    ['measured', `${fmt(elapsed, 1)} s of a 2-person call`],
    ['server CPU', `${fmt((cpuSeconds / elapsed) * 100, 1)} % of one core`],
    ['server CPU per second of call', `${fmt((cpuSeconds * 1000) / elapsed, 1)} ms/s`],
    ['server packets in / out', `${fmt(rate('packetsIn'), 0)} / ${fmt(rate('packetsOut'), 0)} per s`],
    ['server bitrate in / out', `${fmt((rate('bytesIn') * 8) / 1000, 0)} / ${fmt((rate('bytesOut') * 8) / 1000, 0)} kbit/s`],
    ['patient Join → first remote frame, patient', `${patientFirst - joinedAt} ms`],
    ['patient Join → first remote frame, doctor', `${doctorFirst - joinedAt} ms`],
    ['doctor inbound video', video(0)],
    ['patient inbound video', video(1)],
    ...['doctor', 'patient'].map((who, i) => {
      const o = outbound[i];
      const remote = Object.entries(o.remote)
        .map(([kind, r]) => `${kind}: RTT ${r.roundTripTime === undefined ? '-' : fmt(r.roundTripTime * 1000, 1) + ' ms'}, lost ${r.packetsLost}`)
        .join('; ');
      return [
        `${who} sends`,
        `${o.frameWidth}×${o.frameHeight}, limited by ${o.qualityLimitationReason || '-'}, estimate ${fmt(o.availableOutgoingBitrate / 1000, 0)} kbit/s; SFU reports ${remote || 'none'}`,
      ];
    }),
  ];
  const binLabel = BIN.includes('/debug/') ? 'debug build' : BIN.includes('/release/') ? 'release build' : 'build';
  console.log(`Vizit call measurement (server: ${BIN}, ${binLabel})\n`);
  console.log('| metric | value |');
  console.log('|---|---|');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

try {
  await measure();
} catch (e) {
  console.error(`measure-call: failed: ${e && e.stack ? e.stack : e}`);
  dumpDiagnostics(console.error);
  process.exitCode = 1;
} finally {
  await cleanup();
}
